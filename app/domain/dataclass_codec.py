"""Frozen dataclasses <-> plain JSON, driven by their type hints (events, effects, run state).

Supports str/int/bool/float, StrEnums, `X | None`, `tuple[X, ...]`, fixed tuples, `dict[str, X]`,
nested dataclasses, and nested values that bring their own `to_json`/`from_json` (Strategy).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


def encode(value: Any) -> Any:
    """A value as JSON-ready data (nested values with their own `to_json` use it)."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        custom = getattr(value, "to_json", None)
        if custom is not None:
            return custom()
        return encode_fields(value)
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(encode(key)): encode(item) for key, item in value.items()}
    return value


def encode_fields(value: Any) -> dict[str, Any]:
    """The fields of one dataclass instance as a JSON object."""
    return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}


def decode_fields(cls: type[T], data: Any) -> T:
    """Build a dataclass from `encode_fields` output; ValueError on a bad shape."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = decode(hints[f.name], data[f.name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__}: {exc}") from None


def decode(tp: Any, data: Any) -> Any:
    """Decode `data` as type `tp` (the inverse of `encode`)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return data
    if origin is typing.Union or origin is types.UnionType:
        if data is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1:
            raise ValueError(f"unsupported union {tp!r}")
        return decode(non_none[0], data)
    if origin is tuple:
        if not isinstance(data, list | tuple):
            raise ValueError(f"expected a list for {tp!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], item) for item in data)
        if len(args) != len(data):
            raise ValueError(f"expected {len(args)} items for {tp!r}")
        return tuple(decode(a, item) for a, item in zip(args, data, strict=True))
    if origin is dict:
        if not isinstance(data, dict):
            raise ValueError(f"expected an object for {tp!r}")
        return {decode(args[0], k): decode(args[1], v) for k, v in data.items()}
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return tp(data)
        if dataclasses.is_dataclass(tp):
            custom = getattr(tp, "from_json", None)
            if custom is not None:
                return custom(data)
            return decode_fields(tp, data)
        if tp is bool or tp is str:
            if not isinstance(data, tp):
                raise ValueError(f"expected {tp.__name__}, got {type(data).__name__}")
            return data
        if tp is int:
            if isinstance(data, bool) or not isinstance(data, int):
                raise ValueError(f"expected int, got {type(data).__name__}")
            return data
        if tp is float:
            if isinstance(data, bool) or not isinstance(data, int | float):
                raise ValueError(f"expected float, got {type(data).__name__}")
            return float(data)
    raise ValueError(f"unsupported type {tp!r}")


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


# Resolved type hints per class (a memo: classes never change at run time).
_HINTS: dict[type, dict[str, Any]] = {}
