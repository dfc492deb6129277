"""Autogenerate filters, combined: ours and yours, each must agree.

``context.configure()`` takes one ``include_object`` and one
``include_name``; the package has its own (the tenant's version table, the
data-record table, views ...) and a user has theirs.  These combine any
number into one, so adding yours never drops ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["IncludeName", "IncludeObject", "all_names", "all_of"]

IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]
"""``include_object(object, name, type_, reflected, compare_to)``."""
IncludeName = Callable[[str | None, str, Mapping[str, str | None]], bool]
"""``include_name(name, type_, parent_names)``."""


def all_of(*filters: IncludeObject | None) -> IncludeObject:
    """One ``include_object`` that includes an object only if every filter does."""
    active = [f for f in filters if f is not None]

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        return all(f(obj, name, type_, reflected, compare_to) for f in active)

    return include_object


def all_names(*filters: IncludeName | None) -> IncludeName:
    """One ``include_name`` that includes a name only if every filter does."""
    active = [f for f in filters if f is not None]

    def include_name(
        name: str | None, type_: str, parent_names: Mapping[str, str | None]
    ) -> bool:
        return all(f(name, type_, parent_names) for f in active)

    return include_name
