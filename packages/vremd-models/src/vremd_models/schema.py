"""Dataclass schemas read from JSON or YAML: the one set of type rules of ``VREMDConfig`` and train.py's run config.

``build(cls, data)`` turns parsed JSON or YAML into the dataclass ``cls``: every key must be a field and every
value of the field's annotated type (lists become tuples where the annotation says tuple, nested dataclasses are
built in turn). Ranges are each dataclass's own business: its ``__post_init__`` calls :func:`require`. Every
problem is one :class:`FieldError` carrying the dotted key, so a caller that knows where each key came from (the
run-config loader: a YAML file or ``--set``) can name the source as well.
"""

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = ["FieldError", "FieldTypeError", "build", "check_types", "describe_type", "matches_type", "require"]

T = TypeVar("T")


class FieldError(ValueError):
    """An impossible value: ``key`` is the dotted field name, ``problem`` says what is wrong with it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    def under(self, prefix: str) -> "FieldError":
        """The same error with ``prefix`` (``"model.overrides."``) in front of its key, and of the same class."""
        return type(self)(f"{prefix}{self.key}", self.problem)


class FieldTypeError(FieldError, TypeError):
    """A value of the wrong type (also a ``TypeError``, as Python raises for a wrong argument type)."""


def require(ok: bool, key: str, value: object, expected: str) -> None:
    """Raise ``FieldError(key, "must be <expected>, got <value>")`` unless ``ok``: a dataclass's range check."""
    if not ok:
        raise FieldError(key, f"must be {expected}, got {value!r}")


def build(cls: type[T], data: Any, *, prefix: str = "") -> T:
    """The dataclass ``cls`` from a mapping of parsed JSON or YAML, every key and type checked.

    Args:
        cls: A dataclass; fields missing from ``data`` take their defaults.
        data: The mapping.
        prefix: Dotted path of ``data`` in a larger document (``"optimizer."``), put in front of error keys.

    Raises:
        FieldError: an unknown key, or a value the dataclass's own checks refuse.
        FieldTypeError: ``data`` is not a mapping, or a value is not of its field's type.
    """
    if not isinstance(data, Mapping):
        raise FieldTypeError(prefix.rstrip(".") or cls.__name__, f"must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [field.name for field in dataclasses.fields(cls) if field.init]
    for key in data:
        if key not in names:
            raise FieldError(f"{prefix}{key}", f"unknown key (valid: {', '.join(names)})")
    values = {key: _convert(value, hints[key], f"{prefix}{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except FieldError as error:
        raise error.under(prefix) from None


def check_types(instance: Any) -> None:
    """Raise ``FieldTypeError`` for the first field of dataclass ``instance`` whose value is not of its type.

    For ``__post_init__``: constructors called directly (not through :func:`build`) get the same checks.
    """
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if not matches_type(value, hints[field.name]):
            raise FieldTypeError(field.name, f"must be {describe_type(hints[field.name])}, got {value!r}")


def matches_type(value: object, expected: Any) -> bool:
    """Whether ``value`` is of the annotated type ``expected`` (Literal, Union, tuple, list, dict, scalars).

    Strict where YAML and JSON are loose: a bool is not an int; an int is a float.
    """
    origin, args = get_origin(expected), get_args(expected)
    if expected is Any:
        return True
    if dataclasses.is_dataclass(expected):
        return isinstance(value, expected)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, arg) for arg in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches_type(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches_type(v, a) for v, a in zip(value, args, strict=True))
    if origin is list:
        return isinstance(value, list) and all(matches_type(v, args[0]) for v in value)
    if origin is dict:
        items = value.items() if isinstance(value, dict) else ()
        return isinstance(value, dict) and all(isinstance(k, str) and matches_type(v, args[1]) for k, v in items)
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def describe_type(expected: Any) -> str:
    """A type annotation as error messages name it: ``int``, ``one of 'dca', 'da'``, ``tuple[int, int]``."""
    if get_origin(expected) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(expected))
    if get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe_type(a) for a in get_args(expected))
    return getattr(expected, "__name__", None) if get_origin(expected) is None else str(expected).replace("typing.", "")


def _convert(value: Any, expected: Any, key: str) -> Any:
    """``value`` as type ``expected``: lists become tuples where the annotation says tuple, ints become floats."""
    origin, args = get_origin(expected), get_args(expected)
    if dataclasses.is_dataclass(expected):
        return build(expected, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except FieldTypeError:
                continue
    elif origin in (tuple, list) and isinstance(value, list | tuple):
        item_types = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else list(args)
        if len(item_types) == len(value):
            items = [_convert(v, t, key) for v, t in zip(value, item_types, strict=True)]
            return items if origin is list else tuple(items)
    elif origin is dict and isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    elif expected is float and isinstance(value, str):
        # PyYAML reads "2e-3" (no dot) as a string, so numeric strings are accepted where a float is expected.
        try:
            return float(value)
        except ValueError:
            pass
    elif expected is float and matches_type(value, float):
        return float(value)
    elif matches_type(value, expected):
        return value
    raise FieldTypeError(key, f"must be {describe_type(expected)}, got {value!r}")
