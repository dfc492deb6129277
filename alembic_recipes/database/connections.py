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
import os
import re
from collections.abc import Callable, Collection, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard, TypeVar

from alembic.util import CommandError
from sqlalchemy import engine_from_config, event, pool
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util.concurrency import greenlet_spawn, in_greenlet

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "ACCEPTED_CONNECTABLES",
    "OWN_READ",
    "Connectable",
    "connect_engine",
    "connection_lost",
    "display_url",
    "driver_errors",
    "engine_from_options",
    "failing_as",
    "first_line",
    "is_async_connection",
    "is_async_engine",
    "is_async_url",
    "is_connectable",
    "own_read",
    "require_no_running_loop",
    "rolled_back",
    "run_coroutine",
    "run_with_connection",
    "run_with_connection_async",
    "run_with_connections",
    "transactional_ddl",
    "transactional_sqlite",
]

T = TypeVar("T")
OWN_READ = "alembic_recipes.own_read"
"""``connection.info`` key: true inside :func:`own_read`."""
Connectable: TypeAlias = "Connection | Engine | AsyncConnection | AsyncEngine"

# sqlalchemy.ext.asyncio costs ~0.3 s to import: a third of what this package
# adds to every `alembic` run.  It is imported only for async URLs; an
# AsyncEngine or AsyncConnection handed in by a caller means it is loaded.


def _is_asyncio(obj: object, name: str) -> bool:
    """*obj* is an instance of ``sqlalchemy.ext.asyncio.<name>`` (or of a
    subclass), told from its class's ancestry, without importing the module."""
    return any(
        cls.__name__ == name and cls.__module__.startswith("sqlalchemy.ext.asyncio")
        for cls in type(obj).__mro__
    )


def is_async_connection(obj: object) -> TypeGuard[AsyncConnection]:
    """True for a ``sqlalchemy.ext.asyncio.AsyncConnection``."""
    return _is_asyncio(obj, "AsyncConnection")


def is_async_engine(obj: object) -> TypeGuard[AsyncEngine]:
    """True for a ``sqlalchemy.ext.asyncio.AsyncEngine``."""
    return _is_asyncio(obj, "AsyncEngine")


def is_engine_like(obj: object) -> bool:
    """True for an object that is no SQLAlchemy type but behaves like an
    ``Engine``: its ``connect()`` is a context manager yielding a connection
    (test tools wrap connections so: pytest-alembic's ``WrappingConnection``)."""
    return not isinstance(obj, type) and callable(getattr(obj, "connect", None))


def is_connectable(obj: object) -> bool:
    """True for a Connection, Engine, AsyncConnection, AsyncEngine, or an
    object that behaves like an Engine (:func:`is_engine_like`)."""
    return (
        isinstance(obj, Connection | Engine)
        or is_async_connection(obj)
        or is_async_engine(obj)
        or is_engine_like(obj)
    )


ACCEPTED_CONNECTABLES = (
    "a sqlalchemy Connection, Engine, AsyncConnection or AsyncEngine, or an"
    " object whose connect() yields one of those"
)


def display_url(url: str | URL) -> str:
    """*url* as it may be printed: the password masked (``***``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show none of it
        return "<a value that is not a database URL>"


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


def first_line(message: object) -> str:
    """The first line of *message* (an exception or text), for one-line errors."""
    return (str(message).strip().splitlines() or [""])[0]


@contextmanager
def failing_as(what: str) -> Iterator[None]:
    """Turn any error inside into one ``CommandError``: ``"<what>: <Type>:
    <first line>"``, chained to the original (``__cause__``) for callers who
    want the traceback.  For configuration and connection problems, which
    the CLI should report as one ``FAILED:`` line; ``CommandError`` passes."""
    try:
        yield
    except CommandError:
        raise
    except Exception as exc:
        raise CommandError(f"{what}: {type(exc).__name__}: {first_line(exc)}") from exc


def connection_lost(exc: BaseException | None) -> CommandError | None:
    """A one-line error for *exc* when it (or one of its causes) lost the
    connection -- the server restarted, ``pg_terminate_backend``, the network
    -- whose open transaction was therefore never committed; None otherwise.
    Raise it ``from exc`` so that the driver's error stays the cause."""
    for each in driver_errors(exc):
        if each.connection_invalidated:
            orig = each.orig
            return CommandError(
                f"the connection was lost ({type(orig).__name__}: {first_line(orig)});"
                " its open transaction was not committed"
            )
    return None


def driver_errors(exc: BaseException | None) -> Iterator[DBAPIError]:
    """The driver errors among *exc* and its causes (``__cause__``, else
    ``__context__``), outermost first."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError):
            yield exc
        exc = exc.__cause__ or exc.__context__


def is_async_url(url: str | URL) -> bool:
    """True when the URL's dialect is an asyncio one (asyncpg, aiosqlite, ...)."""
    return bool(make_url(url).get_dialect().is_async)


_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_url(url: str, where: str, *, each: Callable[[str], str] = str) -> str:
    """*url* with each ``${NAME}`` replaced by environment variable NAME (a
    password from a Kubernetes Secret, a host per deployment), passed
    through *each*; one that is not set fails, naming it and *where* the URL
    came from."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise CommandError(
                f"sqlalchemy.url in {where} uses the environment variable {name},"
                f" which is not set: set {name}, or write the value in the URL"
            )
        return each(found)

    return _ENV_VAR.sub(value, url)


def engine_from_options(
    options: Mapping[str, str],
    *,
    prefix: str = "sqlalchemy.",
    where: str = "[alembic]",
    keep_one: bool = False,
) -> Engine | AsyncEngine:
    """A ``NullPool`` engine from ini-style options; async when the URL's
    dialect is.  *keep_one*: a sync engine keeps one connection open between
    uses (dispose it when done)."""
    url = expand_url(options.get(f"{prefix}url", "").strip(), where)
    if not url:
        raise CommandError(f"no {prefix}url configured in {where}")
    options = {**options, f"{prefix}url": url}
    engine: Engine | AsyncEngine
    with failing_as(f"invalid {prefix}url {display_url(url)} in {where}"):
        if is_async_url(url):
            from sqlalchemy.ext.asyncio import async_engine_from_config

            engine = async_engine_from_config(
                dict(options), prefix=prefix, poolclass=pool.NullPool
            )
        elif keep_one:
            engine = engine_from_config(
                dict(options), prefix=prefix, pool_size=1, max_overflow=4
            )
        else:
            engine = engine_from_config(
                dict(options), prefix=prefix, poolclass=pool.NullPool
            )
    if engine.dialect.name == "sqlite":
        transactional_sqlite(engine)
    return engine


def transactional_sqlite(engine: Engine | AsyncEngine) -> None:
    """Make SQLite DDL transactional: the driver emits no BEGIN of its own, we do.

    pysqlite (and aiosqlite on top of it) only opens transactions before DML,
    so DDL autocommits and a failed run is half-applied.  This is
    SQLAlchemy's documented recipe: driver autocommit, ``BEGIN`` on begin.
    """
    sync_engine = engine.sync_engine if is_async_engine(engine) else engine
    event.listen(sync_engine, "connect", _driver_autocommit)
    event.listen(sync_engine, "begin", _begin)


def _driver_autocommit(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def transactional_ddl(connection: Connection) -> bool | None:
    """``context.configure(transactional_ddl=...)`` for *connection*: True on
    SQLite made transactional by :func:`transactional_sqlite`, else None (the
    dialect knows: PostgreSQL yes, MySQL/MariaDB no)."""
    if connection.dialect.name == "sqlite":
        return event.contains(connection.engine, "begin", _begin) or None
    return None


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
