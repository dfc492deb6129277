"""Tenant names: one rule, checked before any SQL is sent.

Names become schema names, database names and file names, so the rule keeps
to what is safe in all three, in one case only: ``ACME`` and ``acme`` would be
two schemas on PostgreSQL and one file on a case-insensitive file system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from alembic.util import CommandError

from ...configuration.options import InvalidOption

__all__ = [
    "ALL",
    "FAILED",
    "NAME_RULE",
    "PATTERN_RULE",
    "SHARED",
    "SPARE_MARK",
    "exists",
    "is_pattern",
    "is_reserved",
    "split_list",
    "validate_selector",
    "validate_shared",
    "validate_tenant",
]

ALL = "all"
"""``-x tenant=all``: every known tenant."""
FAILED = "failed"
"""``-x tenant=failed``: the tenants the recorded fleet runs left unfinished."""

SPARE_MARK = "~"
"""In the names of ``provision_spares``' spare schemas, never in a tenant's."""

_NAME = re.compile(r"[a-z_][a-z0-9_-]*")
_RESERVED = ("public", "information_schema", ALL, FAILED)
NAME_RULE = (
    "1 to 63 lower-case ASCII letters, digits, '_' or '-', starting with a letter"
    " or '_'; 'public', 'information_schema', 'pg_*', 'all' and 'failed' are"
    " reserved"
)


def is_reserved(name: str) -> bool:
    """True for names no tenant may have (``public``, ``pg_*``, spares ...)."""
    lowered = name.lower()
    return lowered in _RESERVED or lowered.startswith("pg_") or SPARE_MARK in name


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


_PATTERN = re.compile(r"[a-z0-9_*?\[\]!-]+")
PATTERN_RULE = (
    "a tenant name, or a shell-style pattern of lower-case letters, digits, '_',"
    " '-' and the wildcards * ? [...] (t0*, acme-?), each optionally after '!'"
    " to exclude it"
)


def is_pattern(item: str) -> bool:
    """True for a shell-style pattern (``t0*``, ``acme-?``, ``[ab]*``)."""
    return any(c in item for c in "*?[")


def validate_selector(item: object, *, source: str) -> str:
    """A ``-x tenant`` item: ``all``, a name, a pattern, or one of those
    after ``!`` (excluded); else ``InvalidOption``."""
    if not isinstance(item, str):
        raise InvalidOption(f"invalid tenant {item!r} from {source}: {PATTERN_RULE}")
    body = item[1:] if item.startswith("!") else item
    if is_pattern(body):
        if _PATTERN.fullmatch(body) is None or len(body) > 63:
            raise InvalidOption(
                f"invalid tenant pattern {item!r} from {source}: {PATTERN_RULE}"
            )
        return item
    if body in (ALL, FAILED):
        if body != item:
            raise InvalidOption(
                f"invalid tenant {item!r} from {source}: {PATTERN_RULE}"
            )
        return item
    validate_tenant(body, source=source)
    return item


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


def exists(name: str, what: str) -> CommandError:
    """The error for tenant *name*, asked for as new (``-x new=true``,
    ``provision_tenant()``) while its *what* (schema, database) exists."""
    return CommandError(
        f"tenant {name!r}: its {what} exists already (-x new=true creates only"
        " tenants that do not exist; drop it first, or choose another name)"
    )
