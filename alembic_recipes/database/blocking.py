"""What a migration that timed out was waiting for, and who held it.

A lock timeout ends the statement with a bare "canceling statement due to
lock timeout".  At that moment the session holding the lock is still there,
so the ``handle_error`` listener this module installs (:func:`explaining`)
opens one short second connection and asks the server who holds locks on the
relations the statement names -- PostgreSQL: ``pg_locks`` and
``pg_stat_activity`` (pid, ``application_name``, state, how long its
transaction has been open); MySQL/MariaDB: the other sessions with an open
transaction.  The error carries the answer; :func:`timeout_of` reads it back
for the one-line message.  Nothing here changes the error itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import bindparam, event, text
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError

from ..logs import logger_for
from .errors import driver_errors, first_line

__all__ = ["Holder", "Timeout", "explaining", "narrow_to_statement", "timeout_of"]

log = logger_for(__name__)

BACKEND_KEY = "alembic_recipes.backend"
"""``connection.info`` key: the server's id of the session (our own, never
reported as a holder), recorded when the timeouts are set."""
SCHEMAS_KEY = "alembic_recipes.schemas"
"""``connection.info`` key: the schemas a tenant's statements run in."""
_ATTRIBUTE = "alembic_recipes_timeout"
_WORD = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')

Kind = Literal["lock", "statement"]


@dataclass(frozen=True)
class Holder:
    """A session holding a lock the statement waited for."""

    session: int
    application: str
    state: str
    seconds: float | None
    """How long its transaction has been open."""
    relation: str | None = None
    mode: str | None = None
    running: str | None = None
    """What it runs now (MySQL/MariaDB: the process list's statement)."""

    def __str__(self) -> str:
        what = f"{self.relation} ({self.mode}) held by " if self.relation else ""
        since = f", transaction open {self.seconds:.0f} s" if self.seconds else ""
        runs = f", running {_short(self.running)!r}" if self.running else ""
        return (
            f"{what}session {self.session} (application {self.application!r},"
            f" {self.state}{since}{runs})"
        )


def _short(statement: str, limit: int = 80) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Timeout:
    """A lock or statement timeout: the statement, and who held its locks."""

    kind: Kind
    statement: str
    error: str
    """The driver's error, one line (``LockNotAvailable: canceling ...``)."""
    holders: tuple[Holder, ...] | None = None
    """Who held the lock; None where the database cannot say (SQLite)."""

    def describe(self) -> str:
        """One line: what timed out, on which statement, held by whom."""
        statement = " ".join(self.statement.split())
        if len(statement) > 200:
            statement = statement[:197] + "..."
        line = f"{self.kind} timeout on {statement!r} ({self.error})"
        if self.kind == "lock" and self.holders is not None:
            holders = "; ".join(str(h) for h in self.holders[:5])
            line += f": {holders}" if holders else ": no holder left by then"
        return line


def timeout_of(exc: BaseException | None) -> Timeout | None:
    """The lock or statement timeout that ended *exc* (or one of its causes)."""
    for error in driver_errors(exc):
        found = getattr(error, _ATTRIBUTE, None)
        if isinstance(found, Timeout):
            return found
        kind = _kind(error.orig)
        if kind is not None:
            return Timeout(kind, error.statement or "", _first_line(error.orig))
    return None


def narrow_to_statement(exc: BaseException, statements: Sequence[str]) -> None:
    """*exc* ended a script of several *statements*: when it is a lock
    timeout whose holders are known, name the statement that waited -- the
    first that touches a relation they held -- instead of the whole script."""
    for error in driver_errors(exc):
        found = getattr(error, _ATTRIBUTE, None)
        if not isinstance(found, Timeout) or not found.holders:
            continue
        held = {h.relation.rsplit(".", 1)[-1] for h in found.holders if h.relation}
        for statement in statements:
            if held & _words(statement):
                text = statement.strip().rstrip(";").strip()
                setattr(error, _ATTRIBUTE, replace(found, statement=text))
                return


def _words(statement: str) -> set[str]:
    """The identifiers *statement* names (quoted ones as written)."""
    return {
        quoted.replace('""', '"') if quoted else word.lower()
        for quoted, word in _WORD.findall(statement)
    }


def _first_line(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {first_line(error)}"


_POSTGRESQL: dict[str, tuple[Kind, str]] = {
    "55P03": ("lock", "lock timeout"),
    "57014": ("statement", "statement timeout"),
}
"""PostgreSQL's SQLSTATEs of the two timeouts, and the words their messages
hold (55P03 is any lock not available, 57014 any cancel)."""


def _kind(orig: BaseException | None) -> Kind | None:
    """Which timeout the driver's error *orig* reports, if any."""
    if orig is None:
        return None
    message = str(orig)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _POSTGRESQL and _POSTGRESQL[code][1] in message:
        return _POSTGRESQL[code][0]
    args = getattr(orig, "args", ())
    errno = args[0] if args and isinstance(args[0], int) else None
    if errno == 1205:  # ER_LOCK_WAIT_TIMEOUT: row locks and metadata locks
        return "lock"
    if errno in (1969, 3024):  # MariaDB max_statement_time, MySQL max_execution_time
        return "statement"
    if type(orig).__name__ == "OperationalError" and "database is locked" in message:
        return "lock"
    return None


@contextmanager
def explaining(connection: Connection) -> Iterator[None]:
    """Meanwhile, a lock timeout on *connection*'s engine carries who held
    the lock (see the module docstring)."""
    engine = connection.engine
    added = not event.contains(engine, "handle_error", _explain)
    if added:
        event.listen(engine, "handle_error", _explain)
    try:
        yield
    finally:
        if added:
            event.remove(engine, "handle_error", _explain)


def _explain(context: ExceptionContext) -> None:
    error = context.sqlalchemy_exception
    if not isinstance(error, DBAPIError) or _kind(context.original_exception) != "lock":
        return
    info = context.connection.info if context.connection is not None else {}
    statement = context.statement or ""
    holders: tuple[Holder, ...] | None = None
    try:
        holders = _holders(context.engine, statement, info)
    except Exception as exc:  # a second connection is a courtesy, not a must
        log.debug("could not ask the server who held the lock: %r", exc)
    cause = _first_line(context.original_exception)
    setattr(error, _ATTRIBUTE, Timeout("lock", statement, cause, holders))


def _holders(
    engine: Engine | None, statement: str, info: dict[Any, Any]
) -> tuple[Holder, ...] | None:
    if engine is None or engine.dialect.name == "sqlite":
        return None
    relations = sorted(_words(statement))
    with engine.connect() as other:
        if engine.dialect.name == "postgresql":
            found = _pg_holders(other, relations, info)
            # CREATE INDEX CONCURRENTLY waits for older transactions, not a lock
            return found or _pg_snapshot_holders(other, info)
        return _mysql_holders(other, relations, info)


def _pg_holders(
    conn: Connection, relations: list[str], info: dict[Any, Any]
) -> tuple[Holder, ...]:
    """Sessions holding locks on relations named *relations* (in the
    tenant's schemas, when known)."""
    schemas = info.get(SCHEMAS_KEY)
    sql = (
        "SELECT a.pid, a.application_name, a.state,"
        " extract(epoch FROM now() - a.xact_start), n.nspname, c.relname, l.mode"
        " FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.granted AND l.locktype = 'relation' AND l.pid <> :me"
        " AND l.database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())"
        " AND c.relname IN :relations"
    )
    params: dict[str, Any] = {"me": info.get(BACKEND_KEY) or 0, "relations": relations}
    query = text(sql + (" AND n.nspname IN :schemas" if schemas else ""))
    query = query.bindparams(bindparam("relations", expanding=True))
    if schemas:
        query = query.bindparams(bindparam("schemas", expanding=True))
        params["schemas"] = list(schemas)
    rows = conn.execute(query, params).all() if relations else []
    return tuple(
        Holder(
            int(pid),
            str(app or ""),
            str(state or "?"),
            float(seconds) if seconds is not None else None,
            f"{schema}.{relation}",
            str(mode),
        )
        for pid, app, state, seconds, schema, relation, mode in sorted(
            rows, key=lambda r: -(r[3] or 0)
        )
    )


def _pg_snapshot_holders(conn: Connection, info: dict[Any, Any]) -> tuple[Holder, ...]:
    """Sessions of this database with an open transaction (or snapshot) --
    what ``CREATE INDEX CONCURRENTLY`` waits for -- the oldest first."""
    rows = conn.execute(
        text(
            "SELECT a.pid, a.application_name, a.state,"
            " extract(epoch FROM now() - a.xact_start) FROM pg_stat_activity a"
            " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
            " AND a.pid <> :me AND a.backend_type = 'client backend'"
            " AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)"
            " ORDER BY a.xact_start"
        ),
        {"me": info.get(BACKEND_KEY) or 0},
    ).all()
    return tuple(
        Holder(
            int(pid),
            str(app or ""),
            f"{state or '?'}, an older transaction",
            float(seconds) if seconds is not None else None,
        )
        for pid, app, state, seconds in rows
    )


def _mysql_holders(
    conn: Connection, relations: list[str], info: dict[Any, Any]
) -> tuple[Holder, ...]:
    """Who holds the metadata locks on *relations*: exactly, where the server
    can say (MariaDB's ``metadata_lock_info`` plugin, MySQL's
    ``performance_schema.metadata_locks``); else the suspects -- the other
    sessions with an open transaction, or connected to this database and
    not waiting themselves (``LOCK TABLES`` holds no transaction)."""
    me = {"me": info.get(BACKEND_KEY) or 0}
    exact = _mysql_lock_owners(conn, relations, me)
    rows = conn.execute(
        text(
            "SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.STATE, p.INFO,"
            " TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), t.trx_id IS NOT NULL"
            " FROM information_schema.PROCESSLIST p"
            " LEFT JOIN information_schema.INNODB_TRX t"
            " ON t.trx_mysql_thread_id = p.ID"
            " WHERE p.ID <> :me AND p.ID <> CONNECTION_ID()"
            " AND (t.trx_id IS NOT NULL OR p.DB = DATABASE())"
            " AND COALESCE(p.STATE, '') NOT LIKE 'Waiting for%'"
            " ORDER BY t.trx_started IS NULL, t.trx_started, p.TIME DESC"
        ),
        me,
    ).all()
    holders = []
    for pid, user, host, command, state, running, seconds, in_trx in rows:
        if exact is not None and int(pid) not in exact:
            continue
        status = str(command or "?").lower()
        if in_trx:
            status += ", open transaction"
        if state:
            status += f", {str(state).lower()}"
        relation, mode = exact.get(int(pid), (None, None)) if exact else (None, None)
        holders.append(
            Holder(
                int(pid),
                f"{user}@{host}",
                status,
                float(seconds) if seconds is not None else None,
                relation,
                mode,
                str(running) if running else None,
            )
        )
    return tuple(holders)


def _mysql_lock_owners(
    conn: Connection, relations: list[str], me: dict[str, Any]
) -> dict[int, tuple[str, str]] | None:
    """``{session: (table, lock mode)}`` of the metadata locks on
    *relations* held by others, or None where the server cannot say."""
    if not relations:
        return None
    for sql in (
        "SELECT THREAD_ID, CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), LOCK_MODE"
        " FROM information_schema.METADATA_LOCK_INFO WHERE TABLE_SCHEMA ="
        " DATABASE() AND TABLE_NAME IN :relations AND THREAD_ID <> :me",
        "SELECT t.PROCESSLIST_ID, CONCAT(m.OBJECT_SCHEMA, '.', m.OBJECT_NAME),"
        " m.LOCK_TYPE FROM performance_schema.metadata_locks m"
        " JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID"
        " WHERE m.OBJECT_SCHEMA = DATABASE() AND m.OBJECT_NAME IN :relations"
        " AND m.LOCK_STATUS = 'GRANTED' AND t.PROCESSLIST_ID <> :me",
    ):
        query = text(sql).bindparams(bindparam("relations", expanding=True))
        try:
            with conn.begin_nested() if conn.in_transaction() else conn.begin():
                rows = conn.execute(query, {**me, "relations": relations}).all()
        except DBAPIError:  # no such table (plugin, performance_schema off)
            continue
        if rows:
            return {int(pid): (str(rel), str(mode)) for pid, rel, mode in rows}
    return None
