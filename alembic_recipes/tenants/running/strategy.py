"""Choosing a tenant strategy.

A fleet, the shared scope and the worker processes run tenants through a
:class:`~.interface.TenantStrategy` and choose nothing by strategy themselves:
:func:`strategy_for` is the one place that does.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Connection

from ..model.tenant import Tenant
from .databases import DatabaseTenants
from .interface import TenantStrategy
from .run import Run
from .schemas import SchemaTenants
from .servers import ServerTenants

__all__ = ["TenantStrategy", "strategy_for"]


def strategy_for(
    run: Run, migrate: Callable[[Connection, Tenant], None]
) -> TenantStrategy:
    """The strategy ``tenant_strategy`` names, running *migrate* per tenant;
    with ``servers``, one per server behind :class:`~.servers.ServerTenants`."""
    migrate = run.comparing(migrate)

    def on_one_server(server_run: Run) -> TenantStrategy:
        if server_run.settings.strategy == "schema":
            return SchemaTenants(server_run, migrate)
        return DatabaseTenants(server_run, migrate)

    if run.settings.servers:
        return ServerTenants(run, on_one_server)
    return on_one_server(run)
