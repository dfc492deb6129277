"""Helpers imported by the alembic-recipes templates' ``env.py`` and revision files.

Public API:

* :class:`Settings` (and per template :class:`DataSettings`,
  :class:`TenantSettings`, :class:`DatabaseSettings`) -- every option read
  and checked once, when env.py loads.
* :func:`configure_logging` -- the ini's logging without disabling app loggers.
* :func:`connect_and_run` / :func:`run_with_connection` -- a sync ``Connection``
  from a URL, ``Engine``, ``AsyncEngine`` or ``AsyncConnection``, event loop or not.
* :func:`transactional_sqlite` -- real transactions (DDL included) on SQLite;
  :func:`transactional_ddl` -- what to tell ``context.configure()`` about it.
* :func:`upgrade`, :func:`downgrade`, :func:`stamp`, :func:`current`,
  :func:`run_command` -- awaitable Alembic commands sharing the caller's engine.
* :func:`data_enabled`, :func:`run_data_upgrade`, :func:`run_data_downgrade`,
  :func:`finish_data_migrations`, :func:`pending_data_revisions` -- data-flag.
* :func:`run_tenants`, :func:`offline_tenants`, :class:`Tenant`,
  :func:`upgrade_tenant`, :func:`upgrade_tenant_async`, :func:`validate_tenant`
  -- multitenant.
* :func:`run_databases`, :func:`offline_databases`, :class:`Database`,
  :func:`database_names` -- multidb-mixed.
* :func:`autogenerate_hooks`, :func:`all_of`, :func:`all_names`,
  :func:`chain` -- cookbook autogenerate recipes and filters, composed with
  your own hooks; ``configure_options()`` of the settings, a tenant or a
  database -- the ``context.configure()`` arguments the package needs.
* :func:`check_at_head`, :func:`check_at_head_async` -- is the database at head?
* :func:`create_all_and_stamp`, :func:`create_all_and_stamp_async` -- a fresh
  database or tenant schema from the metadata, stamped at head.
* :func:`get_bool_option` / :func:`parse_bool` -- ``-x``/attributes/ini options.
* :func:`render_tables` -- existing tables as ``op.create_table()`` code
  (``python -m alembic_recipes render-tables URL``).
* :func:`apply_metadata` -- a test/dev database brought to a MetaData by
  autogenerate's operations, run directly; drops only when asked.

Replaceable objects (views, functions, procedures, triggers) live in
:mod:`alembic_recipes.replaceable`; importing it registers their operations.
"""

from __future__ import annotations

from .apply import apply_metadata
from .autogen import autogenerate_hooks, chain
from .bootstrap import create_all_and_stamp, create_all_and_stamp_async
from .commands import current, current_heads, downgrade, run_command, stamp, upgrade
from .connections import (
    Connectable,
    is_async_url,
    run_coroutine,
    run_with_connection,
    transactional_ddl,
    transactional_sqlite,
)
from .data import (
    DataSettings,
    data_enabled,
    finish_data_migrations,
    pending_data_revisions,
    run_data_downgrade,
    run_data_upgrade,
    skip_data_table,
)
from .execution import connect_and_run
from .filters import all_names, all_of
from .heads import check_at_head, check_at_head_async
from .logs import configure_logging
from .multidb import (
    Database,
    DatabaseSettings,
    database_names,
    offline_databases,
    run_databases,
)
from .options import get_bool_option, get_option, parse_bool
from .settings import Settings
from .tables import render_tables
from .tenants import (
    Tenant,
    TenantSettings,
    offline_tenants,
    run_tenants,
    upgrade_tenant,
    upgrade_tenant_async,
    validate_tenant,
)

__all__ = [
    "Connectable",
    "DataSettings",
    "Database",
    "DatabaseSettings",
    "Settings",
    "Tenant",
    "TenantSettings",
    "all_names",
    "all_of",
    "apply_metadata",
    "autogenerate_hooks",
    "chain",
    "check_at_head",
    "check_at_head_async",
    "configure_logging",
    "connect_and_run",
    "create_all_and_stamp",
    "create_all_and_stamp_async",
    "current",
    "current_heads",
    "data_enabled",
    "database_names",
    "downgrade",
    "finish_data_migrations",
    "get_bool_option",
    "get_option",
    "is_async_url",
    "offline_databases",
    "offline_tenants",
    "parse_bool",
    "pending_data_revisions",
    "render_tables",
    "run_command",
    "run_coroutine",
    "run_data_downgrade",
    "run_data_upgrade",
    "run_databases",
    "run_tenants",
    "run_with_connection",
    "skip_data_table",
    "stamp",
    "transactional_ddl",
    "transactional_sqlite",
    "upgrade",
    "upgrade_tenant",
    "upgrade_tenant_async",
    "validate_tenant",
]
__version__ = "0.1.0"
