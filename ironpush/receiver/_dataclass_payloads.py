"""ironpush's own check of a JSON body against a plain dataclass (no pydantic or msgspec needed).

Strict, like msgspec: no coercion (``"1"`` is not an ``int``; an ``int`` is accepted for a
``float``), unknown keys ignored, missing fields without a default refused. Field types:
``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``, ``list[X]``, ``tuple[X, ...]``,
``dict[str, X]``, ``Literal[...]``, enums, unions (``X | None``) and nested dataclasses; a
``__post_init__`` that raises ``ValueError`` or ``TypeError`` makes the body invalid with its
message. Anything else is refused when the route is declared (a pydantic model or a msgspec
Struct takes it), not at the first push::

    @dataclass
    class Order:
        id: int
        total: float
        items: list[str] = field(default_factory=list)

    dataclass_decoder(Order)(b'{"id": 1, "total": 25}')   # Order(id=1, total=25.0, items=[])
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

from .._errors import InvalidPayload
from .._json import loads as loads_json

#: Converts a decoded JSON value at a path (``$.items[0]``) to the type; raises InvalidPayload.
Convert = Callable[[Any, str], Any]

_JSON_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}
_SUPPORTED = (
    "str, int, float, bool, None, Any, list[X], tuple[X, ...], dict[str, X], Literal, enums, "
    "unions and dataclasses"
)


def dataclass_decoder(model: type) -> Callable[[bytes], Any]:
    """A decoder ``bytes -> model``; ``TypeError`` now for a field type it cannot check."""
    convert = _converter(model, {}, model.__name__)

    def decode(body: bytes) -> Any:
        try:
            data = loads_json(body)
        except (ValueError, RecursionError):
            raise InvalidPayload("body is not valid JSON") from None
        return convert(data, "$")

    return decode


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _wrong(where: str, expected: str, value: Any) -> InvalidPayload:
    return InvalidPayload(f"{where}: expected {expected}, got {_json_name(value)}")


def _converter(tp: Any, seen: dict[type, Convert], owner: str) -> Convert:
    """The converter for the annotation ``tp`` (``owner`` names the model for errors)."""
    if tp is Any or tp is object:
        return lambda value, where: value
    if tp is None or tp is type(None):
        return _exact(type(None), "null")
    if tp in (str, bool):
        return _exact(tp, _JSON_NAMES[tp])
    if tp is int:
        return _integer
    if tp is float:
        return _number
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, seen)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return _literal(args)
    if origin is typing.Union or origin is types.UnionType:
        return _union(tp, [_converter(arm, seen, owner) for arm in args])
    if tp is list or origin is list:
        return _list(_converter(args[0] if args else Any, seen, owner))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = _list(_converter(args[0], seen, owner))
        return lambda value, where: tuple(item(value, where))
    if tp is dict or (origin is dict and (not args or args[0] is str)):
        return _dict(_converter(args[1] if args else Any, seen, owner))
    raise TypeError(
        f"model={owner}: the dataclass check supports {_SUPPORTED}, not {tp!r}; use a pydantic "
        "model (or @pydantic.dataclasses.dataclass) or a msgspec Struct for it"
    )


def _exact(kind: type, name: str) -> Convert:
    def convert(value: Any, where: str) -> Any:
        if type(value) is not kind:
            raise _wrong(where, name, value)
        return value

    return convert


def _integer(value: Any, where: str) -> Any:
    if type(value) is not int:
        raise _wrong(where, "integer", value)
    return value


def _number(value: Any, where: str) -> Any:
    if type(value) is not int and type(value) is not float:
        raise _wrong(where, "number", value)
    return float(value)


def _enum(kind: type[enum.Enum]) -> Convert:
    def convert(value: Any, where: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise InvalidPayload(f"{where}: not a valid {kind.__name__}") from None

    return convert


def _literal(allowed: tuple[Any, ...]) -> Convert:
    shown = " | ".join(repr(a) for a in allowed)

    def convert(value: Any, where: str) -> Any:
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise InvalidPayload(f"{where}: expected one of {shown}")
        return value

    return convert


def _union(tp: Any, arms: list[Convert]) -> Convert:
    shown = str(tp).replace("typing.", "")

    def convert(value: Any, where: str) -> Any:
        for arm in arms:
            try:
                return arm(value, where)
            except InvalidPayload:
                continue
        raise _wrong(where, shown, value)

    return convert


def _list(item: Convert) -> Convert:
    def convert(value: Any, where: str) -> Any:
        if type(value) is not list:
            raise _wrong(where, "array", value)
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

    return convert


def _dict(item: Convert) -> Convert:
    def convert(value: Any, where: str) -> Any:
        if type(value) is not dict:
            raise _wrong(where, "object", value)
        return {k: item(v, f"{where}.{k}") for k, v in value.items()}

    return convert


def _dataclass(model: type, seen: dict[type, Convert]) -> Convert:
    if model in seen:  # a recursive model (a tree): its converter, finished below
        return seen[model]
    fields: list[tuple[str, Convert, bool]] = []

    def convert(value: Any, where: str) -> Any:
        if type(value) is not dict:
            raise _wrong(where, f"object ({model.__name__})", value)
        kwargs: dict[str, Any] = {}
        for name, field_convert, required in fields:
            if name in value:
                kwargs[name] = field_convert(value[name], f"{where}.{name}")
            elif required:
                raise InvalidPayload(f"{where}.{name}: field required")
        try:
            return model(**kwargs)
        except (TypeError, ValueError) as exc:  # __post_init__ checks
            raise InvalidPayload(f"{where}: {exc}") from None

    seen[model] = convert
    try:
        hints = typing.get_type_hints(model)
    except Exception as exc:  # a name the annotations use is not importable from the module
        raise TypeError(f"model={model.__name__}: cannot resolve its annotations ({exc})") from exc
    for f in dataclasses.fields(model):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append((f.name, _converter(hints[f.name], seen, model.__name__), required))
    return convert
