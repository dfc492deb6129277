"""The migration lock: one writer per database (and version table) at a time.

Every replica of a service runs ``alembic upgrade head`` at start-up; without a
lock they race (duplicate keys on ``alembic_version``, half of another run's
DDL on MySQL).  The commands that write (``upgrade``, ``downgrade``,
``stamp``) take the lock before Alembic reads the database's version, so a
replica that waited finds the database at head and does nothing.

* PostgreSQL: a session-level advisory lock -- it survives
  ``autocommit_block()``, which ends transactions -- polled with
  ``pg_try_advisory_lock``; it dies with the session.  Behind a connection
  pooler (:mod:`.poolers`) only the transaction-level lock is taken, inside
  the migration's one transaction; a session-level one is refused.
* MySQL/MariaDB: ``GET_LOCK`` (session-level; released when the session ends).
* SQLite files (pysqlite, aiosqlite): an OS file lock beside the database
  (``<file>.alembic-lock``), released when the process ends.
* other dialects: no lock, said once in the log.

The key is derived from the database and its version table (per tenant
schema for multitenant), so unrelated projects on one server never block each
other.  Waiting is bounded (``migration_lock_timeout``, also as ``-x``);
while waiting, one log line names the holder where the database can tell.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from alembic.util import CommandError
from filelock import FileLock, Timeout
from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from ..alembic_internals import VERSION_TABLE
from ..logs import logger_for
from .connections import own_read
from .poolers import pooled, session_required
from .stopping import pause

__all__ = [
    "LOCK_FILE_SUFFIX",
    "creation_lock",
    "lock_key",
    "migration_lock",
    "table_lock",
]

log = logger_for(__name__)

LOCK_FILE_SUFFIX = ".alembic-lock"
"""A SQLite database's lock file is the database file's path plus this."""
_POLL_FIRST, _POLL_MAX = 0.02, 0.5
_unsupported_said: set[str] = set()


def lock_key(database: str, schema: str | None, table: str = VERSION_TABLE) -> int:
    """The signed 64-bit advisory-lock key of one database's version table."""
    digest = hashlib.blake2b(
        f"alembic-recipes\0{database}\0{schema or ''}\0{table}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _wait(
    try_lock: Callable[[], bool],
    holder: Callable[[], str],
    what: str,
    timeout: float,
) -> None:
    """Poll *try_lock* until it succeeds or *timeout* seconds have passed."""
    if try_lock():
        return
    started = time.monotonic()
    log.info("Waiting for the migration lock of %s, held by %s", what, holder())
    delay = _POLL_FIRST
    while time.monotonic() - started < timeout:
        pause(min(delay, max(0.0, timeout - (time.monotonic() - started))))
        if try_lock():
            log.info(
                "Got the migration lock of %s after %.1f s",
                what,
                time.monotonic() - started,
            )
            return
        delay = min(delay * 2, _POLL_MAX)
    raise CommandError(
        f"timed out after {timeout:g} s waiting for the migration lock of {what},"
        f" held by {holder()}; nothing was changed (migration_lock_timeout /"
        " -x migration_lock_timeout=DURATION waits longer)"
    )


# -- PostgreSQL ------------------------------------------------------------------
def _pg_holder(conn: Connection, key: int) -> str:
    row = conn.execute(
        text(
            "SELECT a.pid, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid::bigint = (CAST(:key AS bigint) >> 32) & 4294967295"
            " AND l.objid::bigint = CAST(:key AS bigint) & 4294967295 LIMIT 1"
        ),
        {"key": key},
    ).first()
    if row is None:
        return "another session (gone by now)"
    return f"PostgreSQL pid {row[0]} (application_name {row[1]!r})"


@contextmanager
def _pg_lock(conn: Connection, key: int, what: str, timeout: float) -> Iterator[None]:
    if conn.in_transaction():
        # a caller's open transaction: a transaction-level lock inside it,
        # released when the caller commits or rolls back; nothing is ended here
        def try_xact() -> bool:
            sql = text("SELECT pg_try_advisory_xact_lock(CAST(:key AS bigint))")
            return bool(conn.scalar(sql, {"key": key}))

        _wait(try_xact, lambda: _pg_holder(conn, key), what, timeout)
        with _kept_past_commits(conn, key):
            yield
        return

    if pooled(conn):  # a session lock would stay behind on the pooler's session
        raise session_required(conn, f"the session-level lock on {what}")

    def try_session() -> bool:
        sql = text("SELECT pg_try_advisory_lock(CAST(:key AS bigint))")
        with own_read(conn):
            return bool(conn.scalar(sql, {"key": key}))

    def holder() -> str:
        with own_read(conn):
            return _pg_holder(conn, key)

    _wait(try_session, holder, what, timeout)
    try:
        yield
    finally:
        _pg_unlock(conn, key)


@contextmanager
def _kept_past_commits(conn: Connection, key: int) -> Iterator[None]:
    """Meanwhile, a commit on *conn* -- ``autocommit_block()`` ending the
    migration's transaction -- first takes the session-level lock too (the
    session holds the transaction-level one: granted at once), so the lock
    outlives the transaction; it is released when the block ends.  Behind a
    pooler such a commit is refused before it happens (:mod:`.poolers`)."""
    kept: list[bool] = []

    def keep(connection: Connection) -> None:
        if not kept:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:  # not conn.execute(): the connection is committing
                cursor.execute(f"SELECT pg_advisory_lock({int(key)})")
                cursor.fetchall()
            finally:
                cursor.close()
            kept.append(True)

    event.listen(conn, "commit", keep)
    try:
        yield
    except BaseException:
        event.remove(conn, "commit", keep)
        if kept and not conn.invalidated and not conn.closed:
            # a failure left the transaction Alembic began after the commit
            # aborted: end it first (it was ours, and is rolled back anyway),
            # so that the unlock runs and the failure stays the one raised
            conn.rollback()
            _pg_unlock(conn, key)
        raise
    event.remove(conn, "commit", keep)
    if kept:
        _pg_unlock(conn, key)


def _pg_unlock(conn: Connection, key: int) -> None:
    """Release the session-level lock *key* (a closed connection has)."""
    if not conn.invalidated and not conn.closed:
        sql = text("SELECT pg_advisory_unlock(CAST(:key AS bigint))")
        with own_read(conn):
            conn.execute(sql, {"key": key})


# -- MySQL / MariaDB -------------------------------------------------------------
def _mysql_name(key: int) -> str:
    return f"alembic-recipes.{key & 0xFFFFFFFFFFFFFFFF:016x}"


@contextmanager
def _mysql_lock(
    conn: Connection, key: int, what: str, timeout: float
) -> Iterator[None]:
    name = _mysql_name(key)

    def try_lock() -> bool:
        with own_read(conn):
            got = conn.scalar(text("SELECT GET_LOCK(:name, 0)"), {"name": name})
        return bool(got == 1)

    def holder() -> str:
        with own_read(conn):
            row = conn.execute(
                text(
                    "SELECT p.ID, p.USER, p.HOST FROM information_schema.PROCESSLIST p"
                    " WHERE p.ID = IS_USED_LOCK(:name)"
                ),
                {"name": name},
            ).first()
        return (
            "another session"
            if row is None
            else f"connection {row[0]} ({row[1]}@{row[2]})"
        )

    _wait(try_lock, holder, what, timeout)
    try:
        yield
    finally:
        if not conn.invalidated and not conn.closed:
            with own_read(conn):
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})


def _server_lock(
    conn: Connection,
) -> Callable[[Connection, int, str, float], AbstractContextManager[None]] | None:
    """The advisory lock of *conn*'s server (PostgreSQL, MySQL/MariaDB), or
    None for a database that has none."""
    return {"postgresql": _pg_lock, "mysql": _mysql_lock, "mariadb": _mysql_lock}.get(
        conn.dialect.name
    )


# -- SQLite ----------------------------------------------------------------------
@contextmanager
def _file_lock(path: Path, what: str, timeout: float) -> Iterator[None]:
    lock = FileLock(f"{path}{LOCK_FILE_SUFFIX}")

    def try_lock() -> bool:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    _wait(
        try_lock, lambda: f"another process (lock file {lock.lock_file})", what, timeout
    )
    try:
        yield
    finally:
        lock.release()


# -- entry point -----------------------------------------------------------------
@contextmanager
def migration_lock(
    conn: Connection, *, schema: str | None = None, timeout: float
) -> Iterator[None]:
    """Hold the migration lock of *conn*'s database (version table in *schema*).

    Taken on *conn* itself, before Alembic reads the version: inside its open
    transaction when there is one (a caller's: a transaction-level lock,
    released at the caller's commit or rollback), else as a session-level lock
    -- which ``autocommit_block()`` does not release -- ending only the
    transaction its own statements began.  No other connection is opened.
    """
    dialect = conn.dialect.name
    url = conn.engine.url
    what = url.render_as_string(hide_password=True)
    what += f" (schema {schema})" if schema else ""
    if dialect == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            yield  # private to this connection: nothing to serialise
            return
        with _file_lock(Path(database).resolve(), what, timeout):
            yield
        return
    take = _server_lock(conn)
    if take is None:
        if dialect not in _unsupported_said:
            _unsupported_said.add(dialect)
            log.info("No migration lock for %s: runs are not serialised", dialect)
        yield
        return
    key = lock_key(url.database or "", schema)
    with take(conn, key, what, timeout):
        yield


@contextmanager
def creation_lock(
    conn: Connection | None, database: str, *, timeout: float
) -> Iterator[None]:
    """Hold the lock under which database *database* is created and first
    migrated: on *conn*, a connection to its server's maintenance database
    (PostgreSQL, MySQL/MariaDB), or -- *conn* None, *database* a SQLite
    file's path -- a lock file in the temporary directory named by a hash of
    that path.  A run that finds another
    creating the same database waits here, then finds it created."""
    what = f"the creation of database {database}"
    if conn is None:
        # in the temporary directory, not beside the file: a failed creation
        # removes the directories it made, which must then be empty
        digest = hashlib.blake2b(str(Path(database).resolve()).encode()).hexdigest()
        path = Path(tempfile.gettempdir()) / f"alembic-recipes-create-{digest[:32]}"
        with _file_lock(path, what, timeout):
            yield
        return
    key = lock_key(database, None, "CREATE DATABASE")
    take = _server_lock(conn) or _mysql_lock  # a server: PostgreSQL or MySQL
    with take(conn, key, what, timeout):
        yield


@contextmanager
def table_lock(
    conn: Connection, schema: str | None, table: str, *, timeout: float
) -> Iterator[None]:
    """Serialise the runs that create *table* (in *schema*) on first use and
    write it: check-then-``CREATE`` races otherwise (PostgreSQL: a duplicate
    type; MySQL/MariaDB: a duplicate table, or a ``DESCRIBE`` failing beside
    the other run's ``CREATE``).  Inside *conn*'s transaction on PostgreSQL;
    on MySQL/MariaDB, whose DDL commits on its own, held until the block
    ends.  Other dialects: nothing to do (SQLite has one writer)."""
    take = _server_lock(conn)
    if take is None:
        yield
        return
    key = lock_key(conn.engine.url.database or "", schema, table)
    with take(conn, key, f"table {table}", timeout):
        yield
