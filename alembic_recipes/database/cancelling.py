"""Cancelling the statements this process runs on its servers, from any thread.

A stop (:mod:`.stopping`) must not wait for a statement to finish: a DDL
statement waiting for a lock would keep the application's queries queued
behind it for the whole ``lock_timeout``, or forever with ``lock_timeout =
0``.  Every migration connection is registered while it runs migrations
(:func:`cancellable`), and :func:`cancel_running` asks the server to cancel
what each one runs now -- the statement then fails at once, and its
transaction rolls back on the way out:

* psycopg (3) and psycopg2: the driver's own cancel request (libpq's, also
  through PgBouncer);
* other PostgreSQL drivers (asyncpg): ``pg_cancel_backend(pid)`` on a short
  connection of the same URL;
* MySQL/MariaDB: ``KILL QUERY id`` on a short connection of the same URL;
* SQLite: ``sqlite3.Connection.interrupt()``.

A connection that runs nothing is left alone by the server.  Cancelling is a
courtesy to the server: a failure is logged, never raised.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import URL, Connection

from ..logs import logger_for
from .blocking import BACKEND_KEY

__all__ = ["cancel_running", "cancellable"]

log = logger_for(__name__)

_live: dict[int, _Target] = {}
_lock = threading.Lock()


@dataclass
class _Target:
    """What cancelling one registered connection needs."""

    connection: Connection
    dialect: str
    driver: Any
    """The driver's own connection object (psycopg's, asyncpg's, sqlite3's ...)."""
    url: URL
    is_async: bool

    def backend(self) -> int | None:
        """The server's id of the session: from the driver, else as the
        timeouts recorded it (``connection.info``)."""
        for name in ("get_server_pid", "get_backend_pid", "thread_id"):
            method = getattr(self.driver, name, None)
            if callable(method):
                try:
                    return int(method())
                except Exception:  # closed, or not what it seems
                    break
        info = getattr(self.driver, "info", None)
        pid = getattr(info, "backend_pid", None)
        if isinstance(pid, int):
            return pid
        found = self.connection.info.get(BACKEND_KEY)
        return int(found) if found is not None else None

    def cancel(self) -> None:
        if self.dialect == "sqlite":
            raw = getattr(self.driver, "_conn", self.driver)  # aiosqlite wraps it
            interrupt = getattr(raw, "interrupt", None)
            if callable(interrupt):
                interrupt()
            return
        by_driver = getattr(self.driver, "cancel_safe", None) or (
            None if self.is_async else getattr(self.driver, "cancel", None)
        )
        if self.dialect == "postgresql" and callable(by_driver):
            by_driver()
            return
        backend = self.backend()
        if backend is None:
            return
        if self.dialect == "postgresql":
            sql = "SELECT pg_cancel_backend(:id)"
        elif self.dialect in ("mysql", "mariadb"):
            sql = "KILL QUERY :id"
        else:
            return
        _on_new_connection(self.url, self.is_async, sql, backend)


def _on_new_connection(url: URL, is_async: bool, sql: str, backend: int) -> None:
    """Run *sql* once on a new connection to *url* (an async dialect's on a
    loop of this thread's own)."""
    if not is_async:
        engine = create_engine(url, poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text(sql), {"id": backend})
        finally:
            engine.dispose()
        return

    async def run() -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql), {"id": backend})
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def cancellable(connection: Connection) -> Iterator[None]:
    """Meanwhile *connection*'s running statement is cancelled by
    :func:`cancel_running`."""
    raw = connection.connection
    target = _Target(
        connection,
        connection.dialect.name,
        raw.driver_connection,
        connection.engine.url,
        bool(connection.dialect.is_async),
    )
    key = id(connection)
    with _lock:
        _live[key] = target
    try:
        yield
    finally:
        with _lock:
            if _live.get(key) is target:
                del _live[key]


def cancel_running(timeout: float = 2.0) -> int:
    """Cancel what every registered connection runs now, each from a thread
    of its own; wait up to *timeout* seconds for the requests to be sent.
    Returns how many connections were asked."""
    with _lock:
        targets = list(_live.values())
    threads = [
        threading.Thread(target=_cancel, args=(t,), daemon=True, name="cancel")
        for t in targets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return len(targets)


def _cancel(target: _Target) -> None:
    try:
        target.cancel()
    except Exception as exc:  # the session may be gone already
        log.debug("could not cancel the running statement: %r", exc)


def _forget_after_fork() -> None:
    """A forked worker inherits the parent's registrations, not the right to
    cancel what the parent's connections run."""
    global _lock
    _lock = threading.Lock()
    _live.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
