"""URLs and engines: a URL shown without its password, ``${NAME}`` expanded,
an engine from ``sqlalchemy.*`` options, SQLite with real transactions."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard

from alembic.util import CommandError
from sqlalchemy import engine_from_config, event, pool
from sqlalchemy.engine import URL, Connection, Engine, make_url

from .errors import failing_as

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "ACCEPTED_CONNECTABLES",
    "display_url",
    "engine_from_options",
    "expand_url",
    "is_async_connection",
    "is_async_engine",
    "is_async_url",
    "is_connectable",
    "is_engine_like",
    "transactional_ddl",
    "transactional_sqlite",
]


def display_url(url: str | URL) -> str:
    """*url* as it may be printed: the password masked (``***``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show none of it
        return "<a value that is not a database URL>"


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


def transactional_ddl(connection: Connection) -> bool | None:
    """``context.configure(transactional_ddl=...)`` for *connection*: True on
    SQLite made transactional by :func:`transactional_sqlite`, else None (the
    dialect knows: PostgreSQL yes, MySQL/MariaDB no)."""
    if connection.dialect.name == "sqlite":
        return event.contains(connection.engine, "begin", _begin) or None
    return None


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
