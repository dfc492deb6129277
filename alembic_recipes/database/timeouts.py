"""Lock and statement timeouts on every migration transaction.

A DDL statement waiting for a lock also queues every later query on that
table behind it, so a migration beside a live application must give up soon
(``lock_timeout``, default 10 s) and never run away (``statement_timeout``,
default 1 h); ``0`` leaves the server's own setting (both 0: nothing is set).
Per database:

* PostgreSQL: ``set_config(..., true)`` -- ``SET LOCAL`` -- at the start of
  every transaction on the migration's connection, so it holds for exactly
  that transaction (also through PgBouncer's transaction pooling); with it
  ``client_connection_check_interval`` (PostgreSQL 14+), so that a statement
  of an ``alembic`` process that was killed ends within a second.  Inside
  ``autocommit_block()`` there is no transaction: the session's settings are
  set, and put back when the run ends.
* MySQL/MariaDB: the session's ``lock_wait_timeout`` (metadata locks, which
  DDL waits for) and ``innodb_lock_wait_timeout`` (row locks), whole seconds;
  ``max_statement_time`` (MariaDB) or ``max_execution_time`` (MySQL, SELECT
  only); put back when the run ends.
* SQLite: the busy timeout (how long to wait for another writer), put back
  when the run ends; SQLite has no statement timeout.

:func:`migration_safeguards` applies them together with what else a
migration beside a live application needs: a lock timeout's error names who
held the lock (:mod:`.blocking`), and an INVALID index left by a failed
concurrent build is built again (:mod:`.online_ddl`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import TextClause

from .blocking import BACKEND_KEY, explaining
from .cancelling import cancellable
from .connections import OWN_READ, own_read
from .online_ddl import rebuilding_invalid_indexes

__all__ = ["LOCAL_SETTINGS", "TAKES_LOCAL_SETTINGS", "Timeouts", "migration_safeguards"]

LOCAL_SETTINGS = "alembic_recipes.local_settings"
"""``connection.info`` key: more PostgreSQL settings (name -> value) each
transaction sets with the timeouts, in the same statement (``SET LOCAL``)."""
TAKES_LOCAL_SETTINGS = "alembic_recipes.takes_local_settings"
"""``connection.info`` key: true while the timeouts set :data:`LOCAL_SETTINGS`
at each transaction's start (where they are not, their owner sets them)."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds; 0 leaves the server's setting as it is."""

    lock: float = 10.0
    statement: float = 3600.0


def _ms(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000)))


@contextmanager
def migration_safeguards(connection: Connection, timeouts: Timeouts) -> Iterator[None]:
    """Meanwhile *timeouts* hold for every transaction on *connection*, a
    lock timeout names who held the lock, a failed concurrent index build
    is built again (see the module docstring), and a stop cancels what it
    runs (:mod:`.cancelling`)."""
    dialect = connection.dialect.name
    with ExitStack() as stack:
        stack.enter_context(cancellable(connection))
        stack.enter_context(explaining(connection))
        stack.enter_context(rebuilding_invalid_indexes(connection))
        if timeouts.lock or timeouts.statement:
            if dialect == "postgresql":
                stack.enter_context(_postgresql(connection, timeouts))
            elif dialect in ("mysql", "mariadb"):
                stack.enter_context(_mysql(connection, timeouts))
            elif dialect == "sqlite" and timeouts.lock:
                stack.enter_context(_sqlite(connection, timeouts.lock))
        yield


@contextmanager
def _postgresql(connection: Connection, timeouts: Timeouts) -> Iterator[None]:
    names = [
        (name, _ms(seconds))
        for name, seconds in (
            ("lock_timeout", timeouts.lock),
            ("statement_timeout", timeouts.statement),
        )
        if seconds
    ]
    if (connection.dialect.server_version_info or (0,)) >= (14,):
        # a killed alembic's statement (waiting for a lock, say) ends within
        # a second on the server, instead of queueing the application's
        names.append(("client_connection_check_interval", "1000"))
    settings = _Settings(dict(names))
    previous: dict[str, str] = {}

    def on_begin(conn: Connection) -> None:
        if conn.info.get(OWN_READ):  # our own short read changes nothing
            return
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            if not previous:  # autocommit_block(): the session's, restored later
                previous.update(_pg_settings(conn, list(settings.values)))
            conn.execute(*settings.statement(local=False))
            return
        # with the transaction's other settings (a tenant's search_path):
        # one statement, one round trip
        more = conn.info.get(LOCAL_SETTINGS) or {}
        conn.info[BACKEND_KEY] = conn.scalar(*settings.statement(more))

    info = connection.info  # (read from an invalidated connection, it raises)
    info[TAKES_LOCAL_SETTINGS] = True

    caller = (
        _pg_settings(connection, list(settings.values))
        if connection.in_transaction()
        else {}
    )
    if caller:  # a caller's open transaction: ours from now, theirs after
        on_begin(connection)
    event.listen(connection, "begin", on_begin)
    try:
        yield
    finally:
        event.remove(connection, "begin", on_begin)
        info.pop(TAKES_LOCAL_SETTINGS, None)
        if not connection.invalidated and not connection.closed:
            if caller and connection.in_transaction():
                # the caller's transaction, theirs again; if it failed, its
                # rollback ends our settings with it
                with contextlib.suppress(DBAPIError):
                    _pg_restore(connection, caller, local=True)
            if previous:
                with own_read(connection):
                    _pg_restore(connection, previous, local=False)


class _Settings:
    """The ``set_config()`` statement of the timeouts (and of what else a
    transaction sets with them), built once per set of names."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self._built: dict[tuple[tuple[str, ...], bool], TextClause] = {}

    def statement(
        self, more: Mapping[str, str] | None = None, *, local: bool = True
    ) -> tuple[TextClause, dict[str, str]]:
        """``SELECT [pg_backend_pid(),] set_config(...), ...`` and its values:
        the timeouts and *more*, for the transaction (*local*) or the session."""
        values = {**self.values, **(more or {})}
        key = (tuple(values), local)
        if key not in self._built:
            flag = "true" if local else "false"
            sets = ", ".join(
                f"set_config('{name}', :v{i}, {flag})" for i, name in enumerate(values)
            )
            self._built[key] = text(
                f"SELECT pg_backend_pid(), {sets}" if local else f"SELECT {sets}"
            )
        params = {f"v{i}": value for i, value in enumerate(values.values())}
        return self._built[key], params


def _pg_settings(conn: Connection, names: list[str]) -> dict[str, str]:
    row = conn.execute(
        text(", ".join(f"current_setting('{n}')" for n in names).join(["SELECT ", ""]))
    ).one()
    return dict(zip(names, (str(v) for v in row), strict=True))


def _pg_restore(conn: Connection, values: dict[str, str], *, local: bool) -> None:
    flag = "true" if local else "false"
    for name, value in values.items():
        conn.execute(text(f"SELECT set_config('{name}', :v, {flag})"), {"v": value})


@contextmanager
def _mysql(connection: Connection, timeouts: Timeouts) -> Iterator[None]:
    mariadb = bool(getattr(connection.dialect, "is_mariadb", False))
    statement_variable = "max_statement_time" if mariadb else "max_execution_time"
    wanted: dict[str, Any] = {}
    if timeouts.lock:
        whole = max(1, math.ceil(timeouts.lock))
        wanted |= {"lock_wait_timeout": whole, "innodb_lock_wait_timeout": whole}
    if timeouts.statement:
        wanted[statement_variable] = (
            timeouts.statement if mariadb else int(_ms(timeouts.statement))
        )
    with own_read(connection):
        connection.info[BACKEND_KEY] = connection.scalar(text("SELECT CONNECTION_ID()"))
        row = connection.execute(
            text("SELECT " + ", ".join(f"@@session.{name}" for name in wanted))
        ).one()
        previous = dict(zip(wanted, row, strict=True))
        _mysql_set(connection, wanted)
    try:
        yield
    finally:
        if not connection.invalidated and not connection.closed:
            with own_read(connection):
                _mysql_set(connection, previous)


def _mysql_set(conn: Connection, values: dict[str, Any]) -> None:
    assignments = ", ".join(f"SESSION {name} = :{name}" for name in values)
    conn.execute(text(f"SET {assignments}"), values)


@contextmanager
def _sqlite(connection: Connection, seconds: float) -> Iterator[None]:
    with own_read(connection):
        previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {_ms(seconds)}")
    try:
        yield
    finally:
        if not connection.invalidated and not connection.closed:
            with own_read(connection):
                connection.exec_driver_sql(
                    f"PRAGMA busy_timeout = {int(previous or 0)}"
                )
