"""Online DDL on PostgreSQL: a concurrent index build that failed is built again.

``CREATE INDEX CONCURRENTLY`` that fails (a lock or statement timeout, a
duplicate under a unique index, a cancel, a killed process) leaves its index
behind, marked INVALID: it slows every write, serves no query, and running
the revision again fails with "relation ... already exists" -- or, with
``IF NOT EXISTS``, silently keeps the broken index.  Meanwhile
(:func:`rebuilding_invalid_indexes`), before each ``CREATE INDEX
CONCURRENTLY`` on the migration's connection, an INVALID index of that name
in the schemas on the search_path is dropped (``DROP INDEX CONCURRENTLY``),
with a log line, so that the statement builds it anew.  A valid index is
never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from ..logs import logger_for

__all__ = ["rebuilding_invalid_indexes"]

log = logger_for(__name__)

_CREATE = re.compile(
    r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)',
    re.IGNORECASE,
)


@contextmanager
def rebuilding_invalid_indexes(connection: Connection) -> Iterator[None]:
    """Meanwhile, an INVALID index is dropped before ``CREATE INDEX
    CONCURRENTLY`` builds it again (PostgreSQL; elsewhere nothing)."""
    if connection.dialect.name != "postgresql":
        yield
        return
    event.listen(connection, "before_cursor_execute", _before_execute)
    try:
        yield
    finally:
        event.remove(connection, "before_cursor_execute", _before_execute)


def _before_execute(
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    match = _CREATE.match(statement)
    if match is None:
        return
    token = match[1]
    name = token[1:-1].replace('""', '"') if token.startswith('"') else token.lower()
    literal = "'" + name.replace("'", "''") + "'"
    # the statement's own cursor, before its statement: no bound parameters,
    # so the same text works whatever the driver's paramstyle
    cursor.execute(
        "SELECT n.nspname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE NOT i.indisvalid AND c.relname = {literal}"
        " AND n.nspname = ANY (current_schemas(false))"
        " ORDER BY array_position(current_schemas(false), n.nspname::text) LIMIT 1"
    )
    row = cursor.fetchone()
    if row is None:
        return
    quote = conn.dialect.identifier_preparer.quote
    qualified = f"{quote(row[0])}.{quote(name)}"
    log.warning(
        "Dropping INVALID index %s, left by a concurrent build that failed"
        " earlier; building it again",
        qualified,
    )
    cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}")
