"""Each default written once: value-object fields that carry their default, help and bounds.

The router's option groups (:class:`~ironpush.Leases`, :class:`~ironpush.Limits`...) and the
settings of ``ironpush serve`` declare every field with :func:`setting`. The object checks its
own values against the bounds (:func:`check`), and the CLI builds its options from the same
fields (``ironpush.cli._options``), so a default, its help and its range live in one place,
like httpx's ``Timeout``/``Limits``::

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Shutdown(Checked):
        grace: float = setting(10.0, "Seconds running jobs get to finish.", ge=0)

    Shutdown(grace=-1)   # ValueError: Shutdown.grace must be >= 0, got -1

A constructor that also takes a few flat keywords for the most tuned fields declares them once,
as a ``TypedDict`` of :class:`Shortcut`-annotated types, and applies them with
:func:`apply_shortcuts`::

    class Shortcuts(TypedDict, total=False):
        shutdown_grace: Annotated[float, Shortcut("shutdown", "grace")]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")

_META = "ironpush.setting"


@dataclass(frozen=True, slots=True)
class Setting:
    """What :func:`setting` records about one field: its help, bounds and choices."""

    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds ("must be >= 1"), or None when it is fine."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if value is None or isinstance(value, str | bool):
            return None
        if self.ge is not None and value < self.ge:
            return f"must be >= {self.ge:g}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {self.gt:g}"
        if self.le is not None and value > self.le:
            return f"must be <= {self.le:g}"
        return None


def setting(
    default: T,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] = (),
) -> T:
    """A dataclass field with its default, a one-line ``help`` and optional bounds."""
    meta = Setting(help, ge=ge, gt=gt, le=le, choices=choices)
    return field(default=default, metadata={_META: meta})


def described(obj: Any, name: str) -> Setting:
    """The :class:`Setting` of field ``name`` of a value object (or its class)."""
    for f in dataclasses.fields(obj):
        if f.name == name:
            meta = f.metadata.get(_META)
            if isinstance(meta, Setting):
                return meta
            break
    raise LookupError(f"{name!r} is not a setting() field of {obj!r}")


def settings_of(cls: type[Any]) -> list[tuple[str, Any, Setting]]:
    """``(name, default, setting)`` of every :func:`setting` field of ``cls``, in order."""
    return [
        (f.name, f.default, f.metadata[_META])
        for f in dataclasses.fields(cls)
        if _META in f.metadata
    ]


def check(obj: Any) -> None:
    """Raise ``ValueError`` naming the first field of ``obj`` outside its bounds."""
    for name, _default, meta in settings_of(type(obj)):
        value = getattr(obj, name)
        problem = meta.problem(value)
        if problem is not None:
            raise ValueError(f"{type(obj).__name__}.{name} {problem}, got {value!r}")


class Checked:
    """The base of a value object of :func:`setting` fields: its values are checked against
    their bounds when it is made (:func:`check`)::

        @dataclass(frozen=True, slots=True, kw_only=True)
        class Shutdown(Checked):
            grace: float = setting(10.0, "Seconds running jobs get to finish.", ge=0)
    """

    __slots__ = ()

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True, slots=True)
class Shortcut:
    """Marks a flat keyword as setting field ``field`` of the group ``group`` (in a TypedDict:
    ``claim_lease: Annotated[float, Shortcut("leases", "claim")]``)."""

    group: str
    field: str


def apply_shortcuts(settings: T, given: Mapping[str, Any], declared: type, *, owner: str) -> T:
    """``settings`` (a dataclass of groups) with each flat keyword of ``given`` set on its group.

    ``declared`` is the TypedDict of :class:`Shortcut`-annotated keywords. An undeclared keyword
    is a ``TypeError`` worded as Python's own, naming the groups to use instead; so is a group
    given as anything but its value object (a dict, a number).
    """
    _check_groups(settings, owner)
    targets = {
        name: meta
        for name, hint in get_type_hints(declared, include_extras=True).items()
        for meta in getattr(hint, "__metadata__", ())
        if isinstance(meta, Shortcut)
    }
    groups: dict[str, Any] = {}
    for name, value in given.items():
        target = targets.get(name)
        if target is None:
            raise TypeError(
                f"{owner}() got an unexpected keyword argument {name!r} (options are grouped: "
                f"{_groups_of(settings)})"
            )
        current = groups.get(target.group, getattr(settings, target.group))
        groups[target.group] = dataclasses.replace(current, **{target.field: value})
    return dataclasses.replace(settings, **groups) if groups else settings  # type: ignore[type-var]


def _check_groups(settings: Any, owner: str) -> None:
    """A ``TypeError`` naming the fix when a group of ``settings`` is not its value object
    (``outbox={"concurrency": 8}``: it would fail later, at the first push)."""
    hints = get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        expected, value = hints.get(f.name), getattr(settings, f.name)
        if not isinstance(expected, type) or not dataclasses.is_dataclass(expected):
            continue  # not a group
        if not isinstance(value, expected):
            name = expected.__name__
            example = ", ".join(f"{n}={d!r}" for n, d, _ in settings_of(expected)[:1])
            raise TypeError(
                f"{owner}({f.name}=...) expects {name}(...), such as "
                f"{f.name}={name}({example}); got {type(value).__name__}"
            )


def _groups_of(settings: Any) -> str:
    return ", ".join(
        f"{f.name}={type(getattr(settings, f.name)).__name__}(...)"
        for f in dataclasses.fields(settings)
        if dataclasses.is_dataclass(getattr(settings, f.name))
    )
