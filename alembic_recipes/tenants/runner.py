"""Entry points: what a multitenant env.py calls, and the application helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ..configuration.options import x_arguments
from ..database.connections import Connectable
from ..database.stopping import finishing, stop_on_signals
from ..logs import logger_for
from ..runtime.commands import config_attributes, run_command_async
from .driving.claiming import run_claiming
from .driving.parallel import can_fork, run_parallel
from .driving.serial import run_plan, run_serially
from .driving.shared import migrating_shared, run_shared
from .model.names import validate_tenant
from .model.settings import TenantSettings
from .model.tenant import Tenant
from .running.run import Run
from .running.strategy import strategy_for
from .selection.selection import in_shard, resolve

log = logger_for(__name__)

__all__ = ["offline_tenants", "run_tenants", "upgrade_tenant", "upgrade_tenant_async"]


def run_tenants(
    settings: TenantSettings | Config, migrate: Callable[[Connection, Tenant], None]
) -> None:
    """What a multitenant env.py's ``run_migrations_online()`` calls.

    Calls ``migrate(connection, tenant)`` once per selected tenant inside that
    tenant's transaction (a SAVEPOINT when the caller shared a connection with
    a transaction open), with the tenant's schema selected.  *settings*: what
    env.py loaded with ``TenantSettings.load(config)``.
    """
    settings = TenantSettings.of(settings)
    if settings.plan and settings.command in ("upgrade", "downgrade", "stamp"):
        if settings.shared_runs:
            log.info("plan: the shared scope is not planned (-x tenant=shared runs it)")
        if settings.tenants_run:
            run_plan(strategy_for(Run(settings), migrate))
        return
    for shared in _scopes(settings):
        if shared:
            run_shared(settings, migrate)
        else:
            _run_fleet(settings, migrate)


def _scopes(settings: TenantSettings) -> list[bool]:
    """What this command migrates, in order: True for the shared scope, False
    for the tenants.  The shared scope goes first, last on downgrade.  A
    command naming no tenant fails here, before anything runs."""
    if settings.tenants_run and not settings.every:
        settings.named()
    order = [False] if settings.tenants_run else []
    if settings.shared_runs:
        order.insert(len(order) if settings.command == "downgrade" else 0, True)
    return order


def _run_fleet(
    settings: TenantSettings, migrate: Callable[[Connection, Tenant], None]
) -> None:
    run = Run(settings)
    strategy = strategy_for(run, migrate)
    with stop_on_signals():
        if settings.claim and run.writes:
            if settings.workers > 1:
                log.info(
                    "workers=%d: with shard=claim each runner migrates one tenant"
                    " at a time; start more runners instead",
                    settings.workers,
                )
            run_claiming(strategy)
            with finishing():
                run.report.finish()
            return
        parallel = settings.workers > 1 and run.writes
        why_not = can_fork(run) if parallel else None
        if parallel and why_not is None:
            run_parallel(strategy, settings.workers)
        else:
            if parallel:
                log.info("workers=%d: running serially, %s", settings.workers, why_not)
            run_serially(strategy)
        with finishing():
            run.report.finish()


def offline_tenants(settings: TenantSettings | Config) -> Iterator[Tenant]:
    """The tenants of an offline (``--sql``) run: those given, or the ini list.

    Connects to nothing, so ``-x tenant=all`` uses only the ``tenants`` list.
    The shared scope, when it runs, comes first (last on downgrade).
    """
    settings = TenantSettings.of(settings)
    for shared in _scopes(settings):
        yield from _offline_shared(settings) if shared else _offline_fleet(settings)


def _offline_shared(settings: TenantSettings) -> Iterator[Tenant]:
    with migrating_shared():
        tenant = settings.tenant(str(settings.shared))
        yield replace(tenant, create=settings.create != "never")


def _offline_fleet(settings: TenantSettings) -> Iterator[Tenant]:
    if settings.servers:
        yield from _offline_servers(settings)
        return
    listed = list(settings.tenants)  # offline: no tenants_query
    if settings.needs_known and not listed:
        raise CommandError(
            "offline (--sql) runs connect to nothing: pass -x tenant=NAME[,NAME...]"
            " or list the tenants in tenants = ... in [alembic]"
        )
    known = frozenset(listed)
    for name in offline_selection(settings, listed):
        create = settings.create == "always" or (
            settings.create == "known" and name in known
        )
        yield replace(
            settings.tenant(name), create=create and settings.command == "upgrade"
        )


def offline_selection(settings: TenantSettings, listed: Sequence[str]) -> list[str]:
    """The tenants of an offline (``--sql``) run, selected as an online run
    selects them -- names, ``all``, patterns and exclusions over *listed*,
    then ``-x shard=K/N`` -- and what cannot apply offline refused."""
    if settings.claim:
        raise CommandError(
            "-x shard=claim claims tenants from the database: offline (--sql)"
            " connects to nothing; split a script with -x shard=K/N instead"
        )
    if settings.resumes:
        raise CommandError(
            "-x tenant=failed reads the run record in the database: offline"
            " (--sql) connects to nothing; name the tenants instead"
        )
    if settings.rollout:
        if _on_command_line(settings.config, "rollout"):
            raise CommandError(
                "-x rollout runs waves one after another: an offline (--sql) script"
                " has none; select each wave's tenants with -x tenant=... instead"
            )
        log.warning(
            "rollout (in [alembic]) does not apply offline: the script holds the"
            " selected tenants in order, without waves"
        )
    names = resolve(settings.selectors, settings.excluded, listed)
    if settings.shard is not None:
        k, n = settings.shard
        names = [name for name in names if in_shard(name, k, n)]
        if not names:
            log.warning("offline (--sql): shard %d/%d holds none of the tenants", k, n)
    return names


def _on_command_line(config: Config, key: str) -> bool:
    """*key* was given as ``-x key=...`` (or in ``config.attributes``)."""
    return key in config.attributes or key in x_arguments(config)


def _offline_servers(settings: TenantSettings) -> Iterator[Tenant]:
    """Offline over ``servers``: each tenant's section says its server, as
    listed in the servers' ``tenants`` (the catalog is not read)."""
    listed = {name: s.name for s in settings.servers for name in s.tenants}
    if settings.needs_known and not listed:
        raise CommandError(
            "offline (--sql) runs connect to nothing: pass -x tenant=NAME[,NAME...]"
            " or list each server's tenants in its section (tenants = ...)"
        )
    for name in offline_selection(settings, list(listed)):
        on_server = settings.on_server(_offline_server(settings, listed, name))
        create = settings.create == "always" or (
            settings.create == "known" and name in on_server.tenants
        )
        yield replace(
            on_server.tenant(name), create=create and settings.command == "upgrade"
        )


def _offline_server(settings: TenantSettings, listed: dict[str, str], name: str) -> str:
    """Offline: the server of tenant *name* (as listed; or the one server)."""
    server = listed.get(name)
    if server is None and len(settings.servers) == 1:
        server = settings.servers[0].name
    if server is None:
        raise CommandError(
            f"offline (--sql): tenant {name!r} is listed on none of the servers"
            f" ({', '.join(s.name for s in settings.servers)}): list it in its"
            " server's tenants, or pass -x server=NAME"
        )
    return server


def upgrade_tenant(
    config: Config,
    tenant: str,
    revision: str = "head",
    *,
    connection: Connectable | None = None,
    create: bool = True,
) -> None:
    """Migrate one tenant from application code (e.g. at sign-up); sync.

    Creates its schema/database when missing unless ``create=False``; shares
    *connection* when given (joining its open transaction, if any).
    """
    validate_tenant(tenant, source="upgrade_tenant()")
    extra: dict[str, object] = {"tenant": tenant, "create": create}
    if connection is not None:
        extra["connection"] = connection
    with config_attributes(config, **extra):
        command.upgrade(config, revision)


async def upgrade_tenant_async(
    connectable: Connectable | None,
    config: Config,
    tenant: str,
    revision: str = "head",
    *,
    create: bool = True,
) -> None:
    """Migrate one tenant from async code, sharing *connectable* when given."""
    validate_tenant(tenant, source="upgrade_tenant_async()")
    with config_attributes(config, tenant=tenant, create=create):
        await run_command_async(command.upgrade, connectable, config, revision)
