"""Choosing and running a tenant strategy.

A fleet, the shared scope and the worker processes run tenants through a
:class:`~.interface.TenantStrategy` and choose nothing by strategy themselves:
:func:`strategy_for` is the one place that does.  :func:`run_serially` and
:func:`run_plan` run one in this process (:mod:`.parallel`: in workers).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from sqlalchemy.engine import Connection

from ..database.stopping import check
from .config import Tenant
from .databases import DatabaseTenants
from .fleet import Fleet
from .interface import TenantStrategy
from .schemas import SchemaTenants
from .servers import ServerTenants

__all__ = ["TenantStrategy", "choose", "run_plan", "run_serially", "strategy_for"]


def strategy_for(
    fleet: Fleet, migrate: Callable[[Connection, Tenant], None]
) -> TenantStrategy:
    """The strategy ``tenant_strategy`` names, running *migrate* per tenant;
    with ``servers``, one per server behind :class:`~.servers.ServerTenants`."""
    migrate = fleet.comparing(migrate)

    def on_one_server(server_fleet: Fleet) -> TenantStrategy:
        if server_fleet.settings.strategy == "schema":
            return SchemaTenants(server_fleet, migrate)
        return DatabaseTenants(server_fleet, migrate)

    if fleet.settings.servers:
        return ServerTenants(fleet, on_one_server)
    return on_one_server(fleet)


def choose(strategy: TenantStrategy) -> list[str]:
    """The tenants of this run; its intent recorded (inside the strategy's
    :meth:`~.interface.TenantStrategy.on_connection`)."""
    names = strategy.select()
    strategy.fleet.begin_record(names, strategy.at_head)
    return names


def run_serially(strategy: TenantStrategy) -> None:
    """Run every selected tenant in this process, one after the other, wave
    after wave (``rollout``); a stop (SIGTERM, Ctrl-C) ends the run after
    the tenant it stopped."""
    fleet = strategy.fleet

    def each() -> None:
        fleet.run_to_its_end(lambda: _waves(strategy, choose(strategy)))

    try:
        strategy.on_connection(each)
    finally:  # the bar down, the log level back (before the summary)
        fleet.report.progress.close()


def _waves(strategy: TenantStrategy, names: list[str]) -> None:
    fleet = strategy.fleet
    position = {name: index for index, name in enumerate(names, 1)}
    waves = fleet.waves(names)
    for wave in waves:
        fleet.wave_starts(wave, len(waves))
        failures = len(fleet.report.failures)
        stopped = False
        for name in wave.names:
            check()  # a stop: no tenant starts after it
            work = partial(strategy.one, name)
            if fleet.run_one(position[name], name, work, strategy.verify):
                continue
            if fleet.wave_must_stop(failures):
                stopped = True
                break
        else:
            fleet.run_deferred(
                lambda name: partial(strategy.one, name), strategy.verify
            )
        if not fleet.wave_done(wave, len(waves), failures, stopped):
            break


def run_plan(strategy: TenantStrategy) -> None:
    """``-x plan=true``: one line per selected tenant -- its revision and what
    the command would run -- and a summary; nothing is locked or changed."""
    fleet = strategy.fleet

    def each() -> None:
        names = strategy.select()
        waves = fleet.waves(names)  # a wave naming no tenant fails here too
        if len(waves) > 1:
            fleet.plan_waves(waves)
        for index, name in enumerate(names, 1):
            fleet.plan_one(index, name, strategy.current(name))
        fleet.report.progress.close()
        fleet.finish_plan()

    try:
        strategy.on_connection(each)
    finally:
        fleet.report.progress.close()
