"""Awaitable Alembic commands for async applications, sharing the caller's connection.

``await upgrade_async(engine, config)`` from a FastAPI/Starlette/Litestar lifespan or
an async test runs the migrations on *engine* (or connection) without leaving
the caller's event loop and without ``asyncio.run()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from ..database.connections import Connectable
from ..database.engines import (
    ACCEPTED_CONNECTABLES,
    is_async_connection,
    is_async_engine,
    is_engine_like,
)

__all__ = [
    "config_attributes",
    "current_async",
    "current_heads",
    "downgrade_async",
    "read_through_env",
    "run_command_async",
    "stamp_async",
    "upgrade_async",
]

T = TypeVar("T")
_MISSING = object()


@contextmanager
def config_attributes(config: Config, **values: object) -> Iterator[None]:
    """Set ``config.attributes`` entries for a block, then restore what was there."""
    saved = {key: config.attributes.get(key, _MISSING) for key in values}
    config.attributes.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is _MISSING:
                config.attributes.pop(key, None)
            else:
                config.attributes[key] = value


async def run_command_async(
    cmd: Callable[..., T],
    connectable: Connectable | None,
    config: Config,
    *args: Any,
    **kwargs: Any,
) -> T:
    """Await any ``alembic.command`` function, sharing *connectable* with env.py.

    An ``AsyncConnection``/``AsyncEngine`` runs the command inside
    ``run_sync()`` on the caller's loop; a sync ``Connection``/``Engine`` (or
    ``None``: the ini's URL) runs it on a worker thread.  The caller's
    transaction, if any, is joined: its commit or rollback decides.
    """

    def invoke(connection: object) -> T:
        shared = {} if connection is None else {"connection": connection}
        with config_attributes(config, **shared):
            return cmd(config, *args, **kwargs)

    if is_async_connection(connectable):
        return await connectable.run_sync(invoke)
    if is_async_engine(connectable):
        async with connectable.connect() as connection:
            return await connection.run_sync(invoke)
    sync = connectable is None or isinstance(connectable, Connection | Engine)
    if sync or is_engine_like(connectable):  # (a test tool's engine-like wrapper)
        return await asyncio.to_thread(invoke, connectable)
    raise TypeError(
        f"expected {ACCEPTED_CONNECTABLES} or None,"
        f" got {type(connectable).__name__}: {connectable!r}"
    )


async def upgrade_async(
    connectable: Connectable | None,
    config: Config,
    revision: str = "head",
    **kwargs: Any,
) -> None:
    """``alembic upgrade`` on *connectable*; keywords go to ``command.upgrade``."""
    await run_command_async(command.upgrade, connectable, config, revision, **kwargs)


async def downgrade_async(
    connectable: Connectable | None, config: Config, revision: str, **kwargs: Any
) -> None:
    """``alembic downgrade`` on *connectable*."""
    await run_command_async(command.downgrade, connectable, config, revision, **kwargs)


async def stamp_async(
    connectable: Connectable | None,
    config: Config,
    revision: str | list[str] = "head",
    **kwargs: Any,
) -> None:
    """``alembic stamp`` on *connectable*."""
    await run_command_async(command.stamp, connectable, config, revision, **kwargs)


def read_through_env(
    config: Config, read: Callable[[MigrationContext, ScriptDirectory], Iterable[T]]
) -> list[T]:
    """Run env.py without migrating and collect ``read(context, script)`` from
    every migration context it configures (so env.py's options apply)."""
    script = ScriptDirectory.from_config(config)
    collected: list[T] = []

    def step(rev: Any, context: MigrationContext) -> list[Any]:
        collected.extend(read(context, script))
        return []

    with EnvironmentContext(config, script, fn=step, dont_mutate=True):
        script.run_env()
    return collected


def current_heads(config: Config) -> tuple[str, ...]:
    """The database's current heads, read through env.py (so its options apply)."""
    return tuple(
        read_through_env(config, lambda context, _: context.get_current_heads())
    )


async def current_async(
    connectable: Connectable | None, config: Config
) -> tuple[str, ...]:
    """The database's current heads (empty at base), without printing anything."""
    return await run_command_async(current_heads, connectable, config)
