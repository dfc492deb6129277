"""Run Alembic for many tenants in one process: a schema or a database per tenant.

* :mod:`.names` -- the tenant name rule, checked before any SQL is sent;
* :mod:`.config` -- the template's options (:class:`TenantSettings`) and
  :class:`Tenant`;
* :mod:`.discovery` -- the known tenants (``tenants``, ``tenants_query``,
  ``tenants_pattern``);
* :mod:`.selection` -- which tenants a command runs on, which may be created;
* :mod:`.fleet` -- one command over its tenants: skips, locks, each tenant's run;
* :mod:`.report` -- progress lines, failures, the summary;
* :mod:`.interface` -- :class:`~.interface.TenantStrategy`, the one interface of
  :mod:`.schemas` / :mod:`.databases`, the two strategies, and of
  :mod:`.servers` (tenants on several servers);
* :mod:`.strategy` -- which strategy runs, and running it in this process;
* :mod:`.compiled` -- upgrade scripts rendered once, replayed per tenant;
* :mod:`.shared` -- the shared scope (``shared_scope``) beside the tenants;
* :mod:`.runner` -- env.py's entry points and the application helpers.
"""

from __future__ import annotations

from .config import Tenant, TenantSettings
from .names import NAME_RULE, validate_tenant
from .runner import offline_tenants, run_tenants, upgrade_tenant, upgrade_tenant_async
from .schemas import schema_scope
from .shared import shared_scope

__all__ = [
    "NAME_RULE",
    "Tenant",
    "TenantSettings",
    "offline_tenants",
    "run_tenants",
    "schema_scope",
    "shared_scope",
    "upgrade_tenant",
    "upgrade_tenant_async",
    "validate_tenant",
]
