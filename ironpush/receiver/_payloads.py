"""Typed push bodies: turn a route's ``model=`` into a decoder ``bytes -> model instance``.

Three kinds of model, whichever the service already uses; none is a dependency of ironpush,
and neither pydantic nor msgspec is imported unless a model needs it (a pydantic model's
class exists only if pydantic was imported, so detection looks in ``sys.modules``):

- a **pydantic v2** model (or a ``pydantic.dataclasses`` dataclass): ``model_validate_json``;
- a **msgspec** ``Struct``: a ``msgspec.json.Decoder`` for it;
- a plain **dataclass**: ironpush's own strict check (:mod:`._dataclass_payloads`), the same
  whatever is installed.

Any other type (``list[Order]``, a ``TypedDict``...) goes to pydantic, else msgspec, else it
is refused with the pip line to run. A body that does not decode raises
:class:`~ironpush._errors.InvalidPayload`, whose message says where and why but never quotes
the body (it may hold personal data or secrets)::

    decode = decoder_for(Order)
    order = decode(b'{"id": 1, "total": 25}')
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

from .._errors import InvalidPayload
from ._dataclass_payloads import dataclass_decoder

#: Decodes a push body into the model; raises InvalidPayload.
Decoder = Callable[[bytes], Any]

_KINDS = "a pydantic model, a msgspec Struct or a dataclass"
_ENUM_VALUE = re.compile(r"Invalid enum value .*?(?= - at |$)")


def decoder_for(model: Any) -> Decoder:
    """The decoder for ``model`` (built once per model); ``TypeError`` when it cannot be one."""
    return _decoder(model)


@functools.lru_cache(maxsize=512)
def _decoder(model: Any) -> Decoder:
    if _is_pydantic(model):
        return _pydantic_decoder(model)
    if _is_msgspec_struct(model):
        return _msgspec_decoder(model)
    if isinstance(model, type) and dataclasses.is_dataclass(model):
        return dataclass_decoder(model)
    if isinstance(model, type) and any(
        base.__module__.startswith("pydantic") for base in model.__mro__[1:]
    ):  # a pydantic v1 model: BaseModel without model_validate_json
        raise TypeError(f"model={model.__name__} is a pydantic v1 model; ironpush needs pydantic 2")
    backend = _installed("pydantic") or _installed("msgspec")
    if backend is None:
        raise TypeError(
            f"model={model!r} is not {_KINDS}; other types need pydantic or msgspec: "
            "pip install pydantic (or msgspec)"
        )
    if backend.__name__ == "pydantic":
        return _pydantic_decoder(model)
    return _msgspec_decoder(model)


def _installed(name: str) -> Any:
    """The module ``name``, imported now if it is installed; None if it is not."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _is_pydantic(model: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return hasattr(model, "model_validate_json")
    return hasattr(model, "__pydantic_validator__")  # pydantic.dataclasses.dataclass


def _is_msgspec_struct(model: Any) -> bool:
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and isinstance(model, type) and issubclass(model, msgspec.Struct)


def _pydantic_decoder(model: Any) -> Decoder:
    import pydantic

    adapter = pydantic.TypeAdapter(model)
    failure = pydantic.ValidationError

    def decode(body: bytes) -> Any:
        try:
            return adapter.validate_json(body)
        except failure as exc:
            # Not chained: pydantic's own message quotes the input, which may be personal data.
            raise InvalidPayload(_pydantic_reason(exc)) from None

    return decode


def _pydantic_reason(exc: Any) -> str:
    """``total: Input should be a valid integer; items.0.sku: Field required`` (no input)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid"


def _msgspec_decoder(model: Any) -> Decoder:
    import msgspec

    decoder = msgspec.json.Decoder(model)
    failure = msgspec.DecodeError  # msgspec.ValidationError is a DecodeError

    def decode(body: bytes) -> Any:
        try:
            return decoder.decode(body)
        except failure as exc:
            # "Expected `int`, got `str` - at `$.total`"; only an enum error quotes the value
            raise InvalidPayload(_ENUM_VALUE.sub("Invalid enum value", str(exc))) from None

    return decode
