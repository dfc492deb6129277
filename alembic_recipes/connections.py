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
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard, TypeVar

from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import engine_from_config, event, pool
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.util.concurrency import in_greenlet

from .locks import migration_lock
from .settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "ACCEPTED_CONNECTABLES",
    "Connectable",
    "connect_and_run",
    "connect_engine",
    "display_url",
    "engine_from_options",
    "failing_as",
    "is_async_connection",
    "is_async_engine",
    "is_async_url",
    "is_connectable",
    "require_no_running_loop",
    "run_coroutine",
    "run_with_connection",
    "run_with_connection_async",
    "transactional_ddl",
    "transactional_sqlite",
]

T = TypeVar("T")
Connectable: TypeAlias = "Connection | Engine | AsyncConnection | AsyncEngine"

# sqlalchemy.ext.asyncio costs ~0.3 s to import: a third of what this package
# adds to every `alembic` run.  It is imported only for async URLs; an
# AsyncEngine or AsyncConnection handed in by a caller means it is loaded.


def is_async_connection(obj: object) -> TypeGuard[AsyncConnection]:
    """True for a ``sqlalchemy.ext.asyncio.AsyncConnection``."""
    module = sys.modules.get("sqlalchemy.ext.asyncio")
    return module is not None and isinstance(obj, module.AsyncConnection)


def is_async_engine(obj: object) -> TypeGuard[AsyncEngine]:
    """True for a ``sqlalchemy.ext.asyncio.AsyncEngine``."""
    module = sys.modules.get("sqlalchemy.ext.asyncio")
    return module is not None and isinstance(obj, module.AsyncEngine)


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
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CommandError(f"{what}: {type(exc).__name__}: {first}") from exc


def is_async_url(url: str | URL) -> bool:
    """True when the URL's dialect is an asyncio one (asyncpg, aiosqlite, ...)."""
    return bool(make_url(url).get_dialect().is_async)


def engine_from_options(
    options: Mapping[str, str], *, prefix: str = "sqlalchemy.", where: str = "[alembic]"
) -> Engine | AsyncEngine:
    """A ``NullPool`` engine from ini-style options; async when the URL's dialect is."""
    url = options.get(f"{prefix}url", "").strip()
    if not url:
        raise CommandError(f"no {prefix}url configured in {where}")
    engine: Engine | AsyncEngine
    with failing_as(f"invalid {prefix}url {display_url(url)} in {where}"):
        if is_async_url(url):
            from sqlalchemy.ext.asyncio import async_engine_from_config

            engine = async_engine_from_config(
                dict(options), prefix=prefix, poolclass=pool.NullPool
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


async def _on_async_engine(
    engine: AsyncEngine, fn: Callable[[Connection], T], where: str
) -> T:
    try:
        with failing_as(f"cannot connect to {where}"):
            connection = await engine.connect().start()
        try:
            return await connection.run_sync(fn)
        finally:
            await connection.close()
    finally:
        # Pooled connections belong to the loop that is about to end.
        await engine.dispose()


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
    """Call ``fn`` with a synchronous ``Connection`` drawn from *connectable*.

    A ``Connection`` is used as is (a transaction the caller opened stays the
    caller's to commit or roll back).  An ``Engine`` or ``AsyncEngine`` lends
    one connection for the call.  An ``AsyncConnection`` or caller-owned
    ``AsyncEngine`` is awaited on the caller's loop when called through
    ``run_sync()``, or on a private loop when no loop runs.  *owned* marks an
    engine made from the ini, which may also run on a worker thread's loop.
    *where* names the connectable in errors: a failure to connect is one
    ``CommandError`` (``cannot connect to <where>: <cause>``), chained.
    """
    if isinstance(connectable, Connection):
        return fn(connectable)
    if isinstance(connectable, Engine):
        with connect_engine(connectable, where) as connection:
            return fn(connection)
    if is_async_connection(connectable):
        if in_greenlet():
            return fn(connectable.sync_connection)  # type: ignore[arg-type]
        require_no_running_loop(connectable, where)
        return asyncio.run(connectable.run_sync(fn))
    if is_async_engine(connectable):
        if in_greenlet():
            with connect_engine(connectable.sync_engine, where) as connection:
                return fn(connection)
        if not owned:
            require_no_running_loop(connectable, where)
        return run_coroutine(lambda: _on_async_engine(connectable, fn, where))
    if is_engine_like(connectable):
        with failing_as(f"cannot connect to {where}"):
            lent = connectable.connect()  # type: ignore[attr-defined]
        with lent as connection:
            return run_with_connection(connection, fn, owned=owned, where=where)
    raise TypeError(
        f"expected {ACCEPTED_CONNECTABLES}, got {type(connectable).__name__}:"
        f" {connectable!r}"
    )


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
        " alembic_recipes.upgrade(async_connection, config)` (or another awaitable"
        " command; it runs inside the connection's run_sync())"
    )


def connect_and_run(
    settings: Settings | Config,
    fn: Callable[[Connection], T],
    *,
    section: str | None = None,
    attribute: str = "connection",
    lock: bool = True,
) -> T:
    """What a generated env.py's ``run_migrations_online()`` calls.

    Uses ``config.attributes[attribute]`` when a programmatic caller shared a
    connection or engine, otherwise a new engine from ``sqlalchemy.*`` options
    of the ini *section* (default: the main section), sync or async by URL.
    *settings*: what env.py loaded (or the ``Config``).  Writing commands hold
    the database's migration lock meanwhile (see :mod:`.locks`) unless *lock*
    is false or ``migration_lock = false``.
    """
    options = Settings.of(settings)
    config = options.config
    shared = config.attributes.get(attribute)
    if shared is not None:
        if not is_connectable(shared):
            raise TypeError(
                f"config.attributes[{attribute!r}] must be {ACCEPTED_CONNECTABLES},"
                f" got {type(shared).__name__}: {shared!r}"
            )
        locked = _locked(fn, options) if lock else fn
        return run_with_connection(
            shared, locked, where=f"config.attributes[{attribute!r}]"
        )
    name = section or config.config_ini_section
    engine = engine_from_options(config.get_section(name, {}), where=f"[{name}]")
    where = f"the database {display_url(engine.url)}"
    locked = _locked(fn, options) if lock else fn
    if is_async_engine(engine):
        return run_with_connection(engine, locked, owned=True, where=where)
    try:
        return run_with_connection(engine, locked, where=where)
    finally:
        engine.dispose()


def _locked(
    fn: Callable[[Connection], T], settings: Settings
) -> Callable[[Connection], T]:
    """*fn*, holding the database's migration lock when the command writes."""
    if not settings.locks():
        return fn

    def locked(connection: Connection) -> T:
        with migration_lock(connection, timeout=settings.lock_timeout):
            return fn(connection)

    return locked
