"""Frozen dataclasses made at a plain class's cost: :func:`slot_init`.

A frozen dataclass's generated ``__init__`` stores each field through ``object.__setattr__``
(the class's own ``__setattr__`` refuses): a call per field, about three times what a plain
slotted class costs. The objects ironpush makes per push and per client call (a delivery, a
request, its wire form, the transport's response, the reply) are frozen so that nothing on
the way changes them; ``slot_init`` gives such a class an ``__init__`` that stores each field
through its slot's own descriptor instead, with the generated one's parameters and defaults.
The class stays frozen (assigning a field after construction raises
``FrozenInstanceError``)::

    @slot_init
    @dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 0

    Point(1).y  # 0
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

#: A default made by a factory: the parameter's default, replaced by the factory's value.
_NOTHING: Any = object()


def slot_init(cls: T) -> T:
    """``cls`` (a frozen dataclass with slots) with an ``__init__`` that sets its slots
    directly: same parameters, defaults and default factories, ``__post_init__`` called."""
    params = dataclasses.fields(cls)
    if not (cls.__dataclass_params__.frozen and "__slots__" in cls.__dict__):  # type: ignore[attr-defined]
        raise TypeError(f"slot_init needs a frozen dataclass with slots, not {cls.__name__}")
    env: dict[str, Any] = {"_NOTHING": _NOTHING}
    positional: list[str] = []
    keyword: list[str] = []
    lines: list[str] = []
    for field in params:
        if not field.init:
            raise TypeError(f"slot_init: {cls.__name__}.{field.name} has init=False")
        name = field.name
        env[f"_set_{name}"] = cls.__dict__[name].__set__  # the slot's own setter
        value = name
        if field.default is not dataclasses.MISSING:
            env[f"_default_{name}"] = field.default
            param = f"{name}=_default_{name}"
        elif field.default_factory is not dataclasses.MISSING:
            env[f"_factory_{name}"] = field.default_factory
            param = f"{name}=_NOTHING"
            value = f"_factory_{name}() if {name} is _NOTHING else {name}"
        else:
            param = name
        (keyword if field.kw_only else positional).append(param)
        lines.append(f"    _set_{name}(self, {value})")
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({signature}):\n" + "\n".join(lines or ["    pass"])
    exec(source, env)  # noqa: S102 - field names only, as dataclasses makes its own __init__
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    type.__setattr__(cls, "__init__", init)
    return cls
