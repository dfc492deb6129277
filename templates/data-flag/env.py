"""Alembic environment: schema and data migrations in one revision (data-flag).

Revisions split their work into schema_upgrades()/data_upgrades() and
data_downgrades()/schema_downgrades().  Data parts run only when data
migrations are on:

    alembic -x data=true upgrade head       # or data_migrations = true in the ini
    config.attributes["data"] = True        # programmatic callers

A data part skipped earlier runs, once, the first time data is on; each run
lists the pending ones (``alembic current`` shows them).
"""

from alembic import context
from alembic_recipes import (
    DataSettings,
    autogenerate_hooks,
    configure_logging,
    connect_and_run,
    finish_data_migrations,
)
from sqlalchemy.engine import Connection

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging (loggers that already exist
# stay enabled; config.attributes["configure_logger"] = False skips it).
configure_logging(config)

# Every option of this environment ([alembic] in alembic.ini, or [tool.alembic]
# in pyproject.toml; -x key=value such as -x data=true; config.attributes),
# read and checked once, now: a bad value fails before any connection is opened.
settings = DataSettings.load(config)

# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
target_metadata = None

# other values from the config, defined by the needs of env.py, can be
# acquired -- -x my_important_option=..., then config.attributes, then the ini
# (declare your own -x keys in the x_keys option: x_keys = my_important_option):
# from alembic_recipes import get_option
# my_important_option, _ = get_option(config, "my_important_option")
# ... etc.


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode: write SQL, connect to nothing.

    Data statements are written only when data migrations are on.
    """
    context.configure(
        url=settings.database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )

    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # one transaction for the whole run (SQLite included): a failure
        # leaves nothing half-applied where the database's DDL is transactional;
        # the data-record table kept out of autogenerate; add your own filter
        # with settings.configure_options(connection, include_name=...)
        **settings.configure_options(connection),
        # cookbook autogenerate recipes, switched in the config; add your own
        # with autogenerate_hooks(settings, include_object=...,
        # process_revision_directives=...)
        **autogenerate_hooks(settings),
    )

    with context.begin_transaction():
        context.run_migrations()
        finish_data_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode: schema and data in one transaction.

    Uses config.attributes["connection"] when a caller shares one (Connection,
    Engine, AsyncEngine or AsyncConnection), else sqlalchemy.url, sync or async.
    """
    connect_and_run(settings, do_run_migrations)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
