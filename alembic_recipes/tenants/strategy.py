"""One interface for the two ways of keeping tenants apart.

A fleet, the shared scope and the worker processes run tenants through a
:class:`TenantStrategy` and choose nothing by strategy themselves:
:func:`strategy_for` is the one place that does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection

from .config import Tenant
from .databases import DatabaseTenants
from .fleet import Fleet, Outcome
from .schemas import SchemaTenants
from .servers import ServerTenants

__all__ = ["TenantStrategy", "run_plan", "run_serially", "strategy_for"]

T = TypeVar("T")


class TenantStrategy(Protocol):
    """What a run needs of a strategy (:class:`~.schemas.SchemaTenants`,
    :class:`~.databases.DatabaseTenants`)."""

    fleet: Fleet

    def on_connection(self, fn: Callable[[], T]) -> T:
        """Call *fn* with whatever the tenants share open (the schema
        strategy's connection to the one database; nothing per database)."""
        ...

    def select(self) -> list[str]:
        """The tenants of this run (inside :meth:`on_connection`)."""
        ...

    def known(self) -> list[str]:
        """The known tenants (``tenants``, ``tenants_query``,
        ``tenants_pattern``; inside :meth:`on_connection`)."""
        ...

    def recorded(self) -> list[str] | None:
        """The tenants the run record has unfinished; None: no run recorded
        (inside :meth:`on_connection`)."""
        ...

    def take(self, names: Sequence[str]) -> None:
        """Run on *names*, selected elsewhere (across servers): read what
        :meth:`select` would have read of them (inside :meth:`on_connection`)."""
        ...

    def at_head(self, name: str) -> bool:
        """Known to be at head already, with nothing to lock or read."""
        ...

    def prepare_workers(self, names: Sequence[str]) -> None:
        """Read now what forked workers must share (before they start)."""
        ...

    def save_record(self, only: Collection[str] | None = None) -> None:
        """Store this run's outcomes -- of the tenants *only*, or all -- in
        the run record (inside :meth:`on_connection`)."""
        ...

    def current(self, name: str) -> list[str] | None:
        """Tenant *name*'s versions (inside :meth:`on_connection`, after
        :meth:`select`); None when its schema or database does not exist."""
        ...

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name* (inside :meth:`on_connection`); what it did."""
        ...


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


def run_serially(strategy: TenantStrategy) -> None:
    """Run every selected tenant in this process, one after the other, wave
    after wave (``rollout``)."""
    fleet = strategy.fleet

    def each() -> None:
        names = strategy.select()
        position = {name: index for index, name in enumerate(names, 1)}
        waves = fleet.waves(names)
        for wave in waves:
            fleet.wave_starts(wave, len(waves))
            failures = len(fleet.report.failures)
            stopped = False
            for name in wave.names:
                if fleet.run_one(position[name], name, partial(strategy.one, name)):
                    continue
                if fleet.wave_must_stop(failures):
                    stopped = True
                    break
            else:
                fleet.run_deferred(lambda name: partial(strategy.one, name))
            if not fleet.wave_done(wave, len(waves), failures, stopped):
                break
        strategy.save_record()

    try:
        strategy.on_connection(each)
    finally:  # the bar down, the log level back (before the summary)
        fleet.report.progress.close()


def run_plan(strategy: TenantStrategy) -> None:
    """``-x plan=true``: one line per selected tenant -- its revision and what
    the command would run -- and a summary; nothing is locked or changed."""
    fleet = strategy.fleet

    def each() -> None:
        names = strategy.select()
        for index, name in enumerate(names, 1):
            fleet.plan_one(index, name, strategy.current(name))
        fleet.report.progress.close()
        fleet.finish_plan()

    try:
        strategy.on_connection(each)
    finally:
        fleet.report.progress.close()
