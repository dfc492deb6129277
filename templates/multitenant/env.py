"""Alembic environment: one schema or one database per tenant (multitenant).

Choose the tenants on the command line:

    alembic -x tenant=acme upgrade head
    alembic -x tenant=acme,globex upgrade head
    alembic -x tenant=all upgrade head      # every known tenant (see the config)
    alembic -x tenant=all current           # fleet status
    alembic -x tenant=shared upgrade head   # the shared scope alone

From code, set config.attributes["tenant"] (a name, a list or "all"), or use
alembic_recipes.upgrade_tenant() when a tenant signs up.  Every tenant runs in
its own transaction; the config picks the strategy (schema or database).  With
shared_scope set, the shared tables are migrated once, before the tenants.
"""

from alembic import context
from alembic_recipes import (
    Tenant,
    TenantSettings,
    autogenerate_hooks,
    configure_logging,
    offline_tenants,
    run_tenants,
)
from sqlalchemy.engine import Connection

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging (loggers that already exist
# stay enabled; config.attributes["configure_logger"] = False skips it).
configure_logging(config)

# Every option of this environment ([alembic] in alembic.ini, or [tool.alembic]
# in pyproject.toml; -x key=value; config.attributes), read and checked once,
# now: a bad value fails before any connection is opened.
settings = TenantSettings.load(config)

# add your model's MetaData object here
# for 'autogenerate' support.  Keep it schema-less (no schema= on tables):
# the tenant's schema is chosen at run time.
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
target_metadata = None

# the shared scope's tables (shared_scope in the config), also schema-less:
# they live once, in the shared schema or database.  Tenant tables reference
# them by column (ForeignKey(mymodel.Plan.id)); the shared schema is on each
# tenant's search_path, after the tenant's own.
# shared_metadata = mymodel.SharedBase.metadata
shared_metadata = None


def run_migrations_offline() -> None:
    """Write SQL for the tenants given with -x tenant=...; connect to nothing.

    Each tenant's section starts by selecting its schema (or naming its
    database); the shared scope's section comes first.
    """
    for tenant in offline_tenants(settings):
        context.configure(
            url=tenant.url,
            target_metadata=shared_metadata if tenant.shared else target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            # the tenant's own version table, in its schema or database
            **tenant.configure_options(),
        )

        with context.begin_transaction():
            tenant.select_offline()
            context.run_migrations()


def do_run_migrations(connection: Connection, tenant: Tenant) -> None:
    """Migrate one tenant (or the shared scope): its schema is selected and
    its transaction open."""
    context.configure(
        connection=connection,
        target_metadata=shared_metadata if tenant.shared else target_metadata,
        # what every tenant needs: its own alembic_version (in its schema or
        # database), the transaction the runner opened, the shared scope's
        # part written into upgrade_shared(), its version table kept out of
        # autogenerate; add your own filter with
        # tenant.configure_options(connection, include_name=...)
        **tenant.configure_options(connection),
        # cookbook autogenerate recipes, switched in the config; add your own
        # with autogenerate_hooks(settings, include_object=...,
        # process_revision_directives=...)
        **autogenerate_hooks(settings, runs=tenant.runs),
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations for every selected tenant, in this one process."""
    run_tenants(settings, do_run_migrations)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
