"""Connection poolers in front of PostgreSQL (PgBouncer, say).

A pooler in transaction mode (PgBouncer's ``pool_mode = transaction``, the
common setup) runs each *transaction* on whichever server session is free.
What a session keeps -- a session-level advisory lock, a session's
``search_path``, a prepared statement, the transaction after an
``autocommit_block()`` -- is gone the next transaction, or stays behind on a
session another client gets next (a migration lock nobody releases: the next
run waits for it until its timeout).

A pooler is recognised without asking it anything: the backend pid the
driver was given when it connected (a pooler makes up its own) differs from
the server session's ``pg_backend_pid()``.  Whether it pools by session or
by transaction cannot be told, so every pooler is taken for a transaction
pooler.  Behind one, a migration runs in one transaction that holds
transaction-level locks (:func:`one_transaction`), psycopg prepares nothing,
and what needs a session of its own fails at once, before any SQL, with one
line saying to connect to PostgreSQL directly (:func:`session_required`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..alembic_internals import alembic_may_end
from ..logs import logger_for
from .connections import own_read
from .engines import display_url

__all__ = [
    "POOLED",
    "one_transaction",
    "pooled",
    "session_required",
    "tenant_transaction",
]

log = logger_for(__name__)

POOLED = "alembic_recipes.pooled"
"""``connection.info`` key: whether the connection goes through a pooler."""

_CONNECT_DIRECTLY = (
    "migrate through a direct connection to PostgreSQL instead (a sqlalchemy.url"
    " that bypasses the pooler, such as its server's port 5432)"
)


def _startup_pid(driver: Any) -> int | None:
    """The backend pid *driver* was given when it connected (BackendKeyData):
    libpq's (psycopg, psycopg2) or asyncpg's; None for other drivers."""
    pid = getattr(getattr(driver, "info", None), "backend_pid", None)
    if pid is None and callable(getattr(driver, "get_server_pid", None)):
        pid = driver.get_server_pid()
    return pid if isinstance(pid, int) else None


def pooled(conn: Connection) -> bool:
    """True when *conn* reaches PostgreSQL through a connection pooler.

    Read once per connection (one ``SELECT pg_backend_pid()``) and kept in
    ``conn.info``.  On the way, psycopg is told to prepare nothing (a prepared
    statement lives on one server session); asyncpg, which prepares every
    statement, is refused (:class:`~alembic.util.CommandError`).
    """
    known = conn.info.get(POOLED)
    if known is not None:
        return bool(known)
    found = False
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        said = _startup_pid(driver)
        if said is not None:
            with own_read(conn):
                found = said != conn.scalar(text("SELECT pg_backend_pid()"))
        if found:
            url = display_url(conn.engine.url)
            if conn.dialect.driver == "asyncpg":
                raise CommandError(
                    f"{url} goes through a connection pooler, and asyncpg prepares"
                    " every statement on a server session the pooler may not give"
                    f" it again; {_CONNECT_DIRECTLY}, or use psycopg"
                    " (postgresql+psycopg://) for migrations"
                )
            if driver is not None and hasattr(driver, "prepare_threshold"):
                driver.prepare_threshold = None  # psycopg 3
            log.info(
                "%s goes through a connection pooler: each migration runs in one"
                " transaction, with transaction-level locks",
                url,
            )
    conn.info[POOLED] = found
    return found


def session_required(conn: Connection, needs: str) -> CommandError:
    """The error for *needs* (what wants a session of its own) on *conn*,
    which goes through a pooler."""
    return CommandError(
        f"{display_url(conn.engine.url)} goes through a connection pooler, which may"
        f" run each transaction on another server session; {needs} needs a"
        f" session of its own: {_CONNECT_DIRECTLY}"
    )


class _Unendable:
    """Handed to Alembic as the migration's transaction behind a pooler:
    ``autocommit_block()`` ends it, and fails here first, before any SQL."""

    is_active = True

    def __init__(self, error: CommandError) -> None:
        self.error = error

    def commit(self) -> None:
        raise self.error

    def rollback(self) -> None:
        raise self.error


@contextmanager
def one_transaction(conn: Connection) -> Iterator[None]:
    """Everything inside runs in one transaction on *conn* (a pooled one),
    committed at the end, rolled back on an error; Alembic's
    ``autocommit_block()`` fails naming the pooler instead of ending it."""
    error = session_required(conn, "autocommit_block(), which ends the transaction,")
    with conn.begin(), alembic_may_end({conn: _Unendable(error)}):
        yield


def tenant_transaction(conn: Connection) -> AbstractContextManager[None]:
    """A fleet's tenant on *conn*: behind a pooler, in one transaction (its
    lock and search_path the transaction's own); else nothing to do."""
    if conn.in_transaction() or not pooled(conn):
        return nullcontext()
    return one_transaction(conn)
