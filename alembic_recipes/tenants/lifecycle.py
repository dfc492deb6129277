"""A tenant's life where migrations meet it, for applications and scripts:
made at head (:func:`provision_tenant`, :func:`provision_tenant_async`), from
spare schemas made ahead of time (:func:`fill_spares`,
:func:`fill_spares_async`).

A sign-up handler awaits :func:`provision_tenant_async`: the new tenant is
made as ``alembic -x tenant=NAME -x new=true upgrade head`` would make it --
with ``provision = snapshot``, a copy of the template tenant -- and a tenant
that exists already is an error.  On the schema strategy, when the snapshot
is at the code's head, the copy runs on the caller's connection without
Alembic's command (so concurrent sign-ups run side by side, each under its
tenant's migration lock), taking a spare schema when ``provision_spares``
keeps some; otherwise Alembic's command runs, one at a time in
a process (Alembic's ``context`` is one per process).
"""

from __future__ import annotations

import asyncio
import copy
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, overload

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..database.connections import Connectable, run_on, run_on_async
from ..database.timeouts import migration_safeguards
from ..runtime.commands import run_command_async
from .model.names import validate_tenant
from .model.settings import TenantSettings
from .running.snapshots import Spares, copy_schema

__all__ = [
    "fill_spares",
    "fill_spares_async",
    "provision_tenant",
    "provision_tenant_async",
]

_scripts: dict[tuple[str | None, str], frozenset[str]] = {}
"""The code's heads, read once per process and script location."""
_one_command = threading.Lock()
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _provisioning(config: Config, name: str) -> Config:
    """A copy of *config* asking for tenant *name*, new (the caller's
    ``config.attributes`` untouched: concurrent sign-ups share it)."""
    clone = copy.copy(config)
    clone.attributes = {**config.attributes, "tenant": name, "new": True}
    return clone


def _heads(config: Config) -> frozenset[str]:
    key = (config.config_file_name, str(config.get_main_option("script_location")))
    if key not in _scripts:
        _scripts[key] = frozenset(ScriptDirectory.from_config(config).get_heads())
    return _scripts[key]


def _copier(
    settings: TenantSettings, name: str
) -> Callable[[Connection], tuple[str, ...] | None] | None:
    """The copy without Alembic's command (schema strategy, ``provision =
    snapshot``, one server); None where Alembic's command must run."""
    if not _snapshot_schemas(settings):
        return None
    spares = Spares.of(settings)
    heads = _heads(settings.config)
    timeout = settings.migration_lock_timeout if settings.migration_lock else None
    return lambda conn: copy_schema(
        conn, name, spares.snapshots, heads, timeout, spares
    )


def _snapshot_schemas(settings: TenantSettings) -> bool:
    """Schema tenants on one database, made from the template's snapshot:
    where a copy (or a spare) runs on a connection, without Alembic's command."""
    return (
        settings.strategy == "schema"
        and settings.provisioning.snapshot
        and not settings.servers
    )


def _filler(config: Config) -> tuple[TenantSettings, Callable[[Connection], int]]:
    """The settings, and the fill of their spare schemas."""
    settings = TenantSettings.load(config)
    if not _snapshot_schemas(settings):
        raise CommandError(
            "provision_spares: spare schemas are made for provision = snapshot on"
            " the schema strategy (one database); this configuration has"
            f" provision = {settings.provisioning.how}, tenant_strategy ="
            f" {settings.strategy}"
        )
    spares = Spares.of(settings)

    def fill(conn: Connection) -> int:
        # lock_timeout, and (PostgreSQL 14+) a killed filler's statement
        # ended on the server within a second, as for a migration
        with migration_safeguards(conn, settings.timeouts):
            return spares.fill(conn)

    return settings, fill


@overload
def provision_tenant(
    connectable: AsyncEngine | AsyncConnection, name: str, *, config: Config
) -> Coroutine[Any, Any, None]: ...


@overload
def provision_tenant(
    connectable: Engine | Connection | None, name: str, *, config: Config
) -> None: ...


def provision_tenant(
    connectable: Connectable | None, name: str, *, config: Config
) -> Coroutine[Any, Any, None] | None:
    """Make the new tenant *name* at head; *connectable*: the caller's engine
    or connection (None: ``sqlalchemy.url``).  Fails with one
    ``CommandError`` for a bad name or a tenant that exists.

    Sync with an ``Engine``, a ``Connection`` or None (a script, a sync
    application, a worker thread); awaitable with an ``AsyncEngine`` or an
    ``AsyncConnection``: ``await provision_tenant(engine, name, config=...)``
    is :func:`provision_tenant_async`."""
    if isinstance(connectable, AsyncEngine | AsyncConnection):
        return provision_tenant_async(connectable, name, config=config)
    validate_tenant(name, source="provision_tenant()")
    clone = _provisioning(config, name)
    settings = TenantSettings.load(clone)
    copier = _copier(settings, name)
    if copier is not None:
        done = run_on(connectable, settings.section_options(), copier)
        if done is not None:
            return None
    if connectable is not None:
        clone.attributes["connection"] = connectable
    with _one_command:
        command.upgrade(clone, "head")
    return None


async def provision_tenant_async(
    connectable: Connectable | None, name: str, *, config: Config
) -> None:
    """:func:`provision_tenant` from async code (a FastAPI or Starlette
    sign-up handler), on the caller's event loop: an ``AsyncEngine`` or
    ``AsyncConnection`` runs it through ``run_sync()``."""
    validate_tenant(name, source="provision_tenant_async()")
    clone = _provisioning(config, name)
    settings = TenantSettings.load(clone)
    copier = _copier(settings, name)
    if copier is not None:
        done = await run_on_async(connectable, settings.section_options(), copier)
        if done is not None:
            return
    loop = asyncio.get_running_loop()
    lock = _loop_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        await run_command_async(command.upgrade, connectable, clone, "head")


def fill_spares(connectable: Connectable | None, *, config: Config) -> int:
    """Make spare schemas until ``provision_spares`` are ready at the
    template's versions, dropping stale ones (sync); how many were made --
    0 at once when another process is filling them."""
    settings, fill = _filler(config)
    return run_on(connectable, settings.section_options(), fill)


async def fill_spares_async(connectable: Connectable | None, *, config: Config) -> int:
    """:func:`fill_spares` from async code: after a sign-up, as a background
    task (FastAPI's ``BackgroundTasks``), so that the next one finds a spare."""
    settings, fill = _filler(config)
    return await run_on_async(connectable, settings.section_options(), fill)
