"""Typed option tables: validate a TOML table against a dataclass, and describe it as JSON Schema.

Every table of gradient.toml (and every backend's `[tiers.NAME]`) is a plain dataclass whose
fields carry a `doc` in their metadata. One small validator serves them all, so the error
for a bad key reads the same everywhere and the JSON Schema cannot drift from the model.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class OptionError(Exception):
    """A value does not fit the model; `path` is the key path inside the document."""

    def __init__(self, path: tuple[str, ...], message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.path, self.message, self.suggestion = path, message, suggestion


def doc(text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field with a description (shown by the JSON Schema and `gradient tiers`)."""
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value),
                                 metadata={"doc": text}, **kw)
    return dataclasses.field(default=default, metadata={"doc": text}, **kw)


def nearest(word: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_plural(get_args(tp)[0])}"
    if origin is dict:
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _plural(tp: Any) -> str:
    """What a list holds, in the plural: 'strings', 'integers', 'tables'."""
    words = {str: "strings", int: "integers", float: "numbers", bool: "true or false values"}
    if tp in words:
        return words[tp]
    if get_origin(tp) is dict:
        return "tables"
    return f"items that are each {_type_name(tp)}"


def _coerce(tp: Any, value: Any, path: tuple[str, ...]) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        choices = [str(a) for a in get_args(tp)]
        raise OptionError(path, f"must be {_type_name(tp)}, not {value!r}",
                          nearest(str(value), choices))
    if origin in (Union, types.UnionType):
        arms = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(arms) < len(get_args(tp)):
            return None
        if len(arms) == 1:
            return _coerce(arms[0], value, path)
        errors: list[OptionError] = []
        for arm in get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(arm, value, path)
            except OptionError as exc:
                errors.append(exc)
        suggestion = next((e.suggestion for e in errors if e.suggestion), None)
        raise OptionError(path, f"must be {_type_name(tp)}, not {value!r}", suggestion)
    if origin is list:
        if not isinstance(value, list):
            raise OptionError(path, f"must be {_type_name(tp)}, not {value!r}")
        (item,) = get_args(tp)
        return [_coerce(item, v, (*path, str(i))) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise OptionError(path, f"must be a table, not {value!r}")
        _, item = get_args(tp)
        return {str(k): _coerce(item, v, (*path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise OptionError(path, f"must be a table, not {value!r}")
        return load(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise OptionError(path, f"must be {_type_name(tp)}, not {value!r}")


def load(model: type[T], table: dict[str, Any], path: tuple[str, ...] = ()) -> T:
    """Build `model` from a TOML table, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(model)
    fields = {f.name.replace("_", "-") if f.name.endswith("_") else f.name: f
              for f in dataclasses.fields(model)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise OptionError((*path, key), "unknown key", nearest(key, fields))
        field = fields[key]
        values[field.name] = _coerce(hints[field.name], value, (*path, key))
    return model(**values)


def schema(model: type[Any]) -> dict[str, Any]:
    """The JSON Schema of a dataclass model, generated from its fields."""
    hints = typing.get_type_hints(model)
    props: dict[str, Any] = {}
    for field in dataclasses.fields(model):
        prop = _type_schema(hints[field.name])
        if field.metadata.get("doc"):
            prop["description"] = field.metadata["doc"]
        if field.default is not dataclasses.MISSING and field.default is not None:
            prop["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            prop["default"] = field.default_factory()
        props[field.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def _type_schema(tp: Any) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (Union, types.UnionType):
        arms = [_type_schema(a) for a in get_args(tp) if a is not type(None)]
        return arms[0] if len(arms) == 1 else {"anyOf": arms}
    if origin is list:
        return {"type": "array", "items": _type_schema(get_args(tp)[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(get_args(tp)[1])}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return schema(tp)
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": names[tp]} if tp in names else {}


def as_dict(options: Any) -> dict[str, Any]:
    """A plain dict of an options dataclass, stable for hashing into cache keys."""
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return dataclasses.asdict(options)
    return {}
