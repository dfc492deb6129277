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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from alembic.config import Config
from sqlalchemy.engine import Connection

from ...alembic_internals import StepFunction, replace_step_function, run_step_instead
from ...configuration.options import main_option
from ..model.settings import TenantSettings
from ..model.tenant import Tenant
from ..running.run import Run
from ..running.strategy import strategy_for
from .serial import run_serially

__all__ = ["migrating_shared", "run_shared", "shared_scope"]


def shared_scope(config: Config) -> str | None:
    """The ``shared_scope`` of *config* (for script.py.mako), or None."""
    value, _ = main_option(config, "shared_scope")
    return value.strip() or None if isinstance(value, str) else None


def _nothing() -> None:
    """This revision has no part in the shared scope."""


_SHARED_PARTS = ("upgrade_shared", "downgrade_shared")


def _shared_steps(steps_of: StepFunction) -> StepFunction:
    """Alembic's step function (``fn``), with every revision step running the
    revision's ``upgrade_shared()`` / ``downgrade_shared()`` instead."""

    def steps(heads: Any, migration_context: Any) -> list[Any]:
        found = list(steps_of(heads, migration_context))
        for step in found:
            run_step_instead(step, _SHARED_PARTS, _nothing)
        return found

    return steps


@contextmanager
def migrating_shared() -> Iterator[None]:
    """Meanwhile, env.py's ``configure()`` + ``run_migrations()`` migrate the
    shared scope (the revisions' ``*_shared()`` functions)."""
    with replace_step_function(_shared_steps):
        yield


def run_shared(
    settings: TenantSettings, migrate: Callable[[Connection, Tenant], None]
) -> None:
    """Migrate the shared scope, as a one-tenant run of its own."""

    def migrate_shared(conn: Connection, tenant: Tenant) -> None:
        with migrating_shared():
            migrate(conn, tenant)

    run_serially(strategy_for(Run(settings, shared=True), migrate_shared))
