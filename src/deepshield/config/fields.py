"""Configs from flat mappings (parsed flags): one field, one flag; nested configs flattened."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any


def _nested(cls: type) -> dict[str, type]:
    """Fields of ``cls`` that are themselves config dataclasses: {field name: class}."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if is_dataclass(hints[f.name])}


def config_fields(cls: type) -> set[str]:
    """Every setting of a config, nested configs flattened (what the command's flags must cover)."""
    nested = _nested(cls)
    names: set[str] = set()
    for f in fields(cls):
        names |= config_fields(nested[f.name]) if f.name in nested else {f.name}
    return names


def config_from_mapping(cls: type, values: Mapping[str, Any]) -> Any:
    """Build config ``cls`` from flat ``values`` (e.g. parsed flags): each field takes the value of its
    name, nested configs take theirs from the same mapping; lists become tuples; absent names keep
    their defaults."""
    nested = _nested(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in nested:
            kwargs[f.name] = config_from_mapping(nested[f.name], values)
        elif f.name in values:
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)
