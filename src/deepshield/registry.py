"""One registry mechanism for every family (attacks, objectives, models, defenses, corruptions ...).

A family is a ``Registry``: a name -> entry dict filled by a decorator in the file that defines each
entry (as timm's ``@register_model``). Registering a taken name is a bug (``ValueError``); asking for an
unknown name is the user's mistake (``ConfigError`` listing the choices).

    >>> ATTACKS = Registry("attack")
    >>> @ATTACKS.register("pgd")
    ... class PGD(Attack): ...
    >>> ATTACKS.lookup("pgdd")      # ConfigError: unknown attack 'pgdd'; choose from pgd
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from deepshield.errors import unknown_name

T = TypeVar("T")


class Registry(dict[str, T]):
    """Name -> entry for one ``kind`` of thing (used in messages: "unknown attack ...")."""

    def __init__(self, kind: str, hint: str = "") -> None:
        super().__init__()
        self.kind, self.hint = kind, hint  # hint: appended to the unknown-name error, e.g. an example

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; the same entry twice is a no-op, another one a bug."""
        if name in self and self[name] is not entry:
            raise ValueError(f"{self.kind} name {name!r} is already registered by {self[name]!r}")
        self[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add` (for classes and functions)."""
        return lambda entry: self.add(name, entry)

    def lookup(self, name: str) -> T:
        """The entry of ``name``, or a ConfigError naming the choices."""
        if name not in self:
            error = unknown_name(self.kind, name, self)
            raise type(error)(f"{error} ({self.hint})") if self.hint else error
        return self[name]


__all__ = ["Registry"]
