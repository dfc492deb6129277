"""Give env.py a synchronous ``Connection``, whatever the caller has.

Alembic runs migrations on a synchronous :class:`~sqlalchemy.engine.Connection`.
This module gets one from a URL (sync or async dialect), an ``Engine``, an
``AsyncEngine`` or an ``AsyncConnection``, from plain sync code, from a
running event loop (FastAPI lifespan, pytest-asyncio) or from inside
``AsyncConnection.run_sync()``, and always finishes before returning: no
``asyncio.run() cannot be called from a running event loop``, no
un-awaited coroutine, no ``create_task`` that returns before migrating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet

from .engines import (
    ACCEPTED_CONNECTABLES,
    display_url,
    engine_from_options,
    is_async_connection,
    is_async_engine,
    is_engine_like,
)
from .errors import failing_as

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "OWN_READ",
    "Connectable",
    "connect_engine",
    "own_read",
    "require_no_running_loop",
    "rolled_back",
    "run_coroutine",
    "run_on",
    "run_on_async",
    "run_on_options",
    "run_with_connection",
    "run_with_connection_async",
    "run_with_connections",
]

T = TypeVar("T")
OWN_READ = "alembic_recipes.own_read"
"""``connection.info`` key: true inside :func:`own_read`."""
Connectable: TypeAlias = "Connection | Engine | AsyncConnection | AsyncEngine"


@contextmanager
def own_read(conn: Connection) -> Iterator[Connection]:
    """Statements inside run on *conn*; the transaction they began -- never one
    the caller had open -- is ended (rolled back) after them.

    Alembic takes an open transaction for the caller's and never commits it,
    so every read of ours before a migration (a version, a lock, a setting)
    must not leave one behind.  Meanwhile ``conn.info[OWN_READ]`` is true:
    such a transaction changes nothing, so it needs no migration timeouts.
    """
    was_in_transaction = conn.in_transaction()
    info = conn.info  # (read from an invalidated connection, it raises)
    outer = info.get(OWN_READ, False)
    info[OWN_READ] = True
    try:
        yield conn
    finally:
        info[OWN_READ] = outer
        if not was_in_transaction and conn.in_transaction():
            conn.rollback()


@contextmanager
def rolled_back(conn: Connection) -> Iterator[None]:
    """Everything inside runs in a transaction on *conn* (a SAVEPOINT in the
    caller's) that is rolled back at the end: a rehearsal leaves nothing.
    Alembic, configured meanwhile, takes it for the caller's and never ends it."""
    transaction = conn.begin_nested() if conn.in_transaction() else conn.begin()
    try:
        yield
    finally:
        if transaction.is_active:
            transaction.rollback()


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, event loop or not.

    Without a running loop this is ``asyncio.run``.  When the calling thread
    already runs a loop (a synchronous ``command.upgrade()`` inside an async
    application), the coroutine runs on a fresh loop in a worker thread and
    this call blocks until it is done, so migrations are applied on return.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1, thread_name_prefix="alembic-recipes") as executor:
        return executor.submit(lambda: asyncio.run(make())).result()


def connect_engine(engine: Engine, where: str) -> Connection:
    """``engine.connect()``; a failure is one ``CommandError`` naming *where*."""
    with failing_as(f"cannot connect to {where}"):
        return engine.connect()


def run_with_connection(
    connectable: object,
    fn: Callable[[Connection], T],
    *,
    owned: bool = False,
    where: str = "the connectable",
) -> T:
    """Call ``fn`` with a synchronous ``Connection`` drawn from *connectable*:
    :func:`run_with_connections` for one.

    A ``Connection`` is used as is (a transaction the caller opened stays the
    caller's to commit or roll back).  An ``Engine`` or ``AsyncEngine`` lends
    one connection for the call.  *owned* marks an engine made from the ini,
    which may also run on a worker thread's loop.  *where* names the
    connectable in errors: a failure to connect is one ``CommandError``
    (``cannot connect to <where>: <cause>``), chained.
    """
    return run_with_connections(
        {where: connectable},
        lambda connections: fn(connections[where]),
        owned={where} if owned else (),
    )


def run_on_options(
    options: Mapping[str, str],
    fn: Callable[[Connection], T],
    *,
    where: str = "",
    section: str = "[alembic]",
) -> T:
    """Call ``fn`` with a connection of an engine made from ini-style
    *options* (``sqlalchemy.url`` ...), disposed of afterwards; *where*:
    what connection errors call it (default: ``the database <URL>``);
    *section*: where a bad URL's error says it was configured."""
    engine = engine_from_options(options, where=section)
    where = where or f"the database {display_url(engine.url)}"
    try:
        return run_with_connection(engine, fn, owned=True, where=where)
    finally:
        if not engine.dialect.is_async:
            engine.dispose()


def run_on(
    connectable: object | None,
    options: Mapping[str, str],
    fn: Callable[[Connection], T],
) -> T:
    """Call ``fn`` with a connection of *connectable* (the caller's: see
    :func:`run_with_connection`), else of an engine made from ini-style
    *options* (:func:`run_on_options`)."""
    if connectable is not None:
        return run_with_connection(connectable, fn)
    return run_on_options(options, fn)


def run_with_connections(
    connectables: Mapping[str, object],
    fn: Callable[[dict[str, Connection]], T],
    *,
    owned: Collection[str] = (),
) -> T:
    """Call ``fn`` with a synchronous ``Connection`` for each of *connectables*
    (named by how errors should name them), all open at once: any mix of
    ``Connection``, ``Engine``, ``AsyncConnection``, ``AsyncEngine`` and
    engine-like objects (:func:`is_engine_like`).

    Sync connections are used as they are, engines lend one connection for
    the call.  Async ones are driven from one greenlet: the caller's, when
    called through ``run_sync()``; otherwise a private event loop runs them
    all (on a worker thread when the calling thread runs a loop, which only
    engines in *owned* -- made from the ini -- may do: a caller's
    ``AsyncConnection`` or ``AsyncEngine`` belongs to that running loop).
    """
    with ExitStack() as lent:
        resolved = {
            name: _lend_engine_like(connectable, lent, name)
            for name, connectable in connectables.items()
        }
        asyncs = [name for name, c in resolved.items() if _is_async(c)]
        if in_greenlet() or not asyncs:
            return _with_sync_views(resolved, fn)
        for name in asyncs:
            if name not in owned:
                require_no_running_loop(resolved[name], name)
        return run_coroutine(lambda: _on_private_loop(resolved, fn))


def _is_async(connectable: object) -> bool:
    return is_async_connection(connectable) or is_async_engine(connectable)


def _lend_engine_like(connectable: object, lent: ExitStack, where: str) -> object:
    """*connectable* itself, or the connection an engine-like object lends
    (open until *lent* closes); a non-connectable is a ``TypeError``."""
    if isinstance(connectable, Connection | Engine) or _is_async(connectable):
        return connectable
    if is_engine_like(connectable):
        with failing_as(f"cannot connect to {where}"):
            connection = connectable.connect()  # type: ignore[attr-defined]
        return _lend_engine_like(lent.enter_context(connection), lent, where)
    raise TypeError(
        f"expected {ACCEPTED_CONNECTABLES}, got {type(connectable).__name__}:"
        f" {connectable!r}"
    )


def _with_sync_views(
    resolved: Mapping[str, object], fn: Callable[[dict[str, Connection]], T]
) -> T:
    """*fn* on sync views of *resolved* (async ones: only inside a greenlet)."""
    with ExitStack() as opened:
        views = {
            name: _sync_view(connectable, opened, name)
            for name, connectable in resolved.items()
        }
        return fn(views)


def _sync_view(connectable: object, opened: ExitStack, where: str) -> Connection:
    if isinstance(connectable, Connection):
        return connectable
    if is_async_connection(connectable):
        return connectable.sync_connection  # type: ignore[return-value]
    engine = connectable.sync_engine if is_async_engine(connectable) else connectable
    assert isinstance(engine, Engine)
    connection: Connection = opened.enter_context(connect_engine(engine, where))
    return connection


async def _on_private_loop(
    resolved: Mapping[str, object], fn: Callable[[dict[str, Connection]], T]
) -> T:
    """*fn* in a greenlet of this (private) loop, async engines connected on
    it; their pools are emptied after, since their connections belong to a
    loop that is about to end."""
    opened: list[AsyncConnection] = []
    engines = [c for c in resolved.values() if is_async_engine(c)]
    try:
        views: dict[str, object] = {}
        for name, connectable in resolved.items():
            if is_async_engine(connectable):
                with failing_as(f"cannot connect to {name}"):
                    connection = await connectable.connect().start()
                opened.append(connection)
                views[name] = connection
            else:
                views[name] = connectable
        return await greenlet_spawn(_with_sync_views, views, fn)
    finally:
        for connection in opened:
            await connection.close()
        for engine in engines:
            await engine.dispose()


async def run_with_connection_async(
    connectable: object, fn: Callable[[Connection], T]
) -> T:
    """:func:`run_with_connection` for async code, on the caller's event loop.

    ``AsyncConnection``/``AsyncEngine`` run *fn* through ``run_sync()``; sync
    connectables on a worker thread.
    """
    if is_async_connection(connectable):
        return await connectable.run_sync(fn)
    if is_async_engine(connectable):
        async with connectable.connect() as conn:
            return await conn.run_sync(fn)
    return await asyncio.to_thread(run_with_connection, connectable, fn)


async def run_on_async(
    connectable: object | None,
    options: Mapping[str, str],
    fn: Callable[[Connection], T],
) -> T:
    """:func:`run_on` for async code: the caller's connectable through
    :func:`run_with_connection_async`, else an engine of *options* on a worker
    thread (the event loop goes on meanwhile)."""
    if connectable is not None:
        return await run_with_connection_async(connectable, fn)
    return await asyncio.to_thread(run_on_options, options, fn)


def require_no_running_loop(connectable: object, where: str) -> None:
    """Fail clearly when a sync command would have to await *connectable* (an
    AsyncConnection/AsyncEngine, named by *where*) from the loop that owns it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise CommandError(
        f"{where} is an {type(connectable).__name__} of the running event loop,"
        " which a synchronous Alembic command cannot await from inside that loop;"
        " run the command on the loop instead: `await"
        " alembic_recipes.upgrade_async(async_connection, config)` (or another"
        " awaitable command; it runs inside the connection's run_sync())"
    )
