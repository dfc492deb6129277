"""The shared scope: tables that exist once beside the tenants' (plans,
users, the tenant list itself -- django-tenants' SHARED_APPS).

``shared_scope = public`` names the shared schema (schema strategy) or the
name put in the ``{tenant}`` URL for the shared database (database strategy).
It has its own version table, and its own part of every revision:
``upgrade_shared()`` / ``downgrade_shared()``, which Alembic runs in place of
``upgrade()`` / ``downgrade()`` for that scope (a revision without them does
nothing there, so revisions written before the shared scope keep working).
It is migrated once, before the tenants (after them on downgrade), in the
same command.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from alembic import context
from alembic.config import Config
from sqlalchemy.engine import Connection

from ..connections import connect_and_run
from ..options import main_option
from .config import Tenant, TenantSettings
from .databases import run_databases
from .fleet import Fleet
from .schemas import run_schemas

__all__ = ["migrating_shared", "run_shared", "shared_scope"]


def shared_scope(config: Config) -> str | None:
    """The ``shared_scope`` of *config* (for script.py.mako), or None."""
    value, _ = main_option(config, "shared_scope")
    return value.strip() or None if isinstance(value, str) else None


def _nothing() -> None:
    """This revision has no part in the shared scope."""


def _shared_steps(steps_of: Callable[..., Iterable[Any]]) -> Callable[..., list[Any]]:
    """Alembic's step function (``fn``), with every revision step running the
    revision's ``upgrade_shared()`` / ``downgrade_shared()`` instead."""

    @functools.wraps(steps_of)  # its name tells which command runs
    def steps(heads: Any, migration_context: Any) -> list[Any]:
        found = list(steps_of(heads, migration_context))
        for step in found:
            revision = getattr(step, "revision", None)  # stamps have none
            if revision is not None and hasattr(step, "is_upgrade"):
                name = "upgrade_shared" if step.is_upgrade else "downgrade_shared"
                step.migration_fn = getattr(revision.module, name, _nothing)
        return found

    return steps


@contextmanager
def migrating_shared() -> Iterator[None]:
    """Meanwhile, env.py's ``configure()`` + ``run_migrations()`` migrate the
    shared scope (the revisions' ``*_shared()`` functions)."""
    environment = getattr(context, "_proxy", None)
    opts = getattr(environment, "context_opts", None)
    original = opts.get("fn") if opts is not None else None
    if opts is None or original is None:
        yield
        return
    opts["fn"] = _shared_steps(original)
    try:
        yield
    finally:
        opts["fn"] = original


def run_shared(
    options: TenantSettings, migrate: Callable[[Connection, Tenant], None]
) -> None:
    """Migrate the shared scope, as a one-tenant run of its own."""

    def migrate_shared(conn: Connection, tenant: Tenant) -> None:
        with migrating_shared():
            migrate(conn, tenant)

    fleet = Fleet(options, shared=True)
    if options.strategy == "schema":
        connect_and_run(
            options, lambda conn: run_schemas(fleet, migrate_shared, conn), lock=False
        )
    else:
        run_databases(fleet, migrate_shared)
