"""Tenant names: one rule, checked before any SQL is sent.

Names become schema names, database names and file names, so the rule keeps
to what is safe in all three, in one case only: ``ACME`` and ``acme`` would be
two schemas on PostgreSQL and one file on a case-insensitive file system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from alembic.util import CommandError

from ..options import InvalidOption

__all__ = [
    "ALL",
    "NAME_RULE",
    "SHARED",
    "is_reserved",
    "split_list",
    "validate_shared",
    "validate_tenant",
]

ALL = "all"
"""``-x tenant=all``: every known tenant."""

_NAME = re.compile(r"[a-z_][a-z0-9_-]*")
_RESERVED = ("public", "information_schema", ALL)
NAME_RULE = (
    "1 to 63 lower-case ASCII letters, digits, '_' or '-', starting with a letter"
    " or '_'; 'public', 'information_schema', 'pg_*' and 'all' are reserved"
)


def is_reserved(name: str) -> bool:
    """True for names no tenant may have (``public``, ``pg_*`` ...)."""
    return name.lower() in _RESERVED or name.lower().startswith("pg_")


def validate_tenant(name: object, *, source: str = "tenant") -> str:
    """Return *name* if it is a safe tenant name, else raise ``CommandError``.

    *source* says where the name came from (``-x tenant``, ``tenants_query``).
    """
    ok = (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and len(name.encode()) <= 63
        and not is_reserved(name)
    )
    if not ok:
        raise InvalidOption(f"invalid tenant name {name!r} from {source}: {NAME_RULE}")
    return str(name)


SHARED = "shared"
"""``-x tenant=shared``: the shared scope (when ``shared_scope`` is set)."""


def validate_shared(name: str) -> str:
    """The ``shared_scope`` name: a tenant-safe name, ``public`` allowed."""
    if name != "public":
        try:
            validate_tenant(name, source="shared_scope")
        except CommandError:
            raise InvalidOption(
                f"invalid shared_scope {name!r}: the shared schema (e.g. public) or"
                f" the shared database's name in the {{tenant}} URL: {NAME_RULE}"
            ) from None
    return name


def validate_all(names: Iterable[object], source: str) -> list[str]:
    """Every name of *names* validated, duplicates merged, order kept."""
    return list(dict.fromkeys(validate_tenant(n, source=source) for n in names))


def split_list(value: str | None) -> list[str]:
    """``"a, b c"`` -> ``["a", "b", "c"]``."""
    return [part for part in re.split(r"[\s,]+", value or "") if part]
