"""Run Alembic for many tenants in one process: a schema or a database per tenant.

The package reads bottom up, each part importing only those before it:

* :mod:`.model` -- what a tenant and a server are; the name rule; the
  template's options (:class:`TenantSettings`), each checked when read;
* :mod:`.selection` -- how a run's tenants are chosen: the known tenants, the
  selection over them, which may be created;
* :mod:`.records` -- what a run records and reports: the run record and its
  journal, the claims table, the report, progress;
* :mod:`.running` -- how one tenant runs: the :class:`~.running.run.Run` and
  the strategies (a schema or a database per tenant, several servers) behind
  :class:`~.running.interface.TenantStrategy`;
* :mod:`.driving` -- how a run is driven: serially, in worker processes, by
  runners claiming tenants, wave after wave, or planned; the shared scope;
* :mod:`.runner` -- env.py's entry points and the application helpers;
  :mod:`.lifecycle` -- a tenant made at head for an application's sign-up,
  spare schemas made ahead of it;
  :mod:`.dropping` -- a tenant dropped or renamed.
"""

from __future__ import annotations

from .driving.shared import shared_scope
from .dropping import drop_tenant, rename_tenant
from .lifecycle import (
    fill_spares,
    fill_spares_async,
    provision_tenant,
    provision_tenant_async,
)
from .model.names import NAME_RULE, validate_tenant
from .model.settings import TenantSettings
from .model.tenant import Tenant
from .runner import offline_tenants, run_tenants, upgrade_tenant, upgrade_tenant_async
from .running.schema_scope import schema_scope
from .running.tenant_free import tenant_schema

__all__ = [
    "NAME_RULE",
    "Tenant",
    "TenantSettings",
    "drop_tenant",
    "fill_spares",
    "fill_spares_async",
    "offline_tenants",
    "provision_tenant",
    "provision_tenant_async",
    "rename_tenant",
    "run_tenants",
    "schema_scope",
    "shared_scope",
    "tenant_schema",
    "upgrade_tenant",
    "upgrade_tenant_async",
    "validate_tenant",
]
