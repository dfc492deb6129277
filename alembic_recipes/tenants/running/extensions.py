"""Extensions beside schema tenants: created once, in a schema every tenant sees.

A PostgreSQL database has each extension once, in one schema.  A revision's
``CREATE EXTENSION pg_trgm`` run with a tenant's search_path creates it inside
that first tenant's schema; the next tenant's ``CREATE EXTENSION IF NOT
EXISTS`` then creates nothing, and its ``gin_trgm_ops`` is not found.  So,
while a schema tenant migrates (:func:`shared_extensions`), every ``CREATE
EXTENSION`` sent on its connection that names no schema gets ``SCHEMA
<extensions_schema>`` (the shared scope's schema, else ``public``) and ``IF
NOT EXISTS``, and that schema is on every tenant's search_path after its own
(:attr:`~.config.Tenant.search_path`).  Tenants migrating at once (workers,
two runs) take turns there: ``IF NOT EXISTS`` alone is not safe against a
concurrent creation, so the statement first takes a transaction-level
advisory lock.  A ``DROP EXTENSION`` in a tenant's downgrade would take the
extension from every other tenant: it is skipped, with a log line once per
run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from ...database.locks import lock_key
from ...logs import logger_for

__all__ = ["Extensions"]

log = logger_for(__name__)

_NAME = r'"(?:[^"]|"")+"|[A-Za-z_][\w$]*'
_CREATE = re.compile(
    rf"\bCREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})([^;]*)", re.I
)
_DROP = re.compile(rf"\bDROP\s+EXTENSION\s+(?:IF\s+EXISTS\s+)?({_NAME})[^;]*", re.I)
_SCHEMA = re.compile(r"\bSCHEMA\b", re.I)
_WITH = re.compile(r"^\s*WITH\b", re.I)
_LOCKED = "CREATE EXTENSION"


class Extensions:
    """Where one run's tenants put their extensions (*schema*; None: as
    written), and what it said about them."""

    def __init__(self, schema: str | None) -> None:
        self.schema = schema
        self._said: set[str] = set()

    def lock(self, connection: Connection) -> str:
        """The statement that makes creations of extensions take turns."""
        key = lock_key(connection.engine.url.database or "", self.schema, _LOCKED)
        return f"SELECT pg_advisory_xact_lock({key})"

    def rewritten(
        self, statement: str, connection: Connection, *, locking: bool = True
    ) -> str:
        """*statement* (one, or a script) with each ``CREATE EXTENSION`` in
        the schema, unless it names one, after the creation lock (*locking*;
        else the caller takes it); each ``DROP EXTENSION`` skipped."""
        if self.schema is None or "EXTENSION" not in statement.upper():
            return statement
        preparer = connection.dialect.identifier_preparer
        schema = preparer.quote_identifier(self.schema)
        lock = f"{self.lock(connection)};\n" if locking else ""

        def create(match: re.Match[str]) -> str:
            name, rest = match[1], match[2]
            if not _SCHEMA.search(rest):
                rest = f" SCHEMA {schema}{_WITH.sub('', rest)}"
            return f"{lock}CREATE EXTENSION IF NOT EXISTS {name}{rest}"

        def drop(match: re.Match[str]) -> str:
            name = match[1]
            if name not in self._said:
                self._said.add(name)
                log.info(
                    "DROP EXTENSION %s skipped: extensions are shared by every"
                    " tenant (schema %s); drop it yourself once no tenant uses it",
                    name,
                    schema,
                )
            return "SELECT 1"

        return _DROP.sub(drop, _CREATE.sub(create, statement))

    @contextmanager
    def shared(self, connection: Connection) -> Iterator[None]:
        """Meanwhile the statements sent on *connection* are
        :meth:`rewritten` (a script sent by asyncpg's own ``execute()``
        bypasses this: rewrite it first)."""
        if self.schema is None or connection.dialect.name != "postgresql":
            yield
            return

        def rewrite(
            conn: Connection,
            cursor: Any,
            statement: str,
            parameters: Any,
            context: Any,
            executemany: bool,
        ) -> tuple[str, Any]:
            if _CREATE.search(statement):  # one statement: the lock before it
                cursor.execute(self.lock(conn))
            return self.rewritten(statement, conn, locking=False), parameters

        event.listen(connection, "before_cursor_execute", rewrite, retval=True)
        try:
            yield
        finally:
            event.remove(connection, "before_cursor_execute", rewrite)
