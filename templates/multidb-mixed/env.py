"""Alembic environment: several databases, sync and async engines mixed (multidb-mixed).

alembic.ini lists the databases (databases = main, analytics) and gives each a
section with its sqlalchemy.url, sync or async.  Every command runs on all of
them, all-or-nothing: one transaction per database, committed together.

    alembic upgrade head                    # every database
    alembic -x db=analytics upgrade head    # some of them

Revisions have upgrade_<name>()/downgrade_<name>() per database.  From code,
share connections with config.attributes["connections"] = {name: Connection,
Engine, AsyncEngine or AsyncConnection}.
"""

from alembic import context
from alembic_recipes import (
    Database,
    DatabaseSettings,
    autogenerate_hooks,
    configure_logging,
    offline_databases,
    run_databases,
)
from sqlalchemy import MetaData
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
settings = DatabaseSettings.load(config)

# add your models' MetaData objects here, one per database name of
# alembic.ini, for 'autogenerate' support:
# from myapp import models
# target_metadata = {
#     "main": models.Base.metadata,
#     "analytics": models.AnalyticsBase.metadata,
# }
target_metadata: dict[str, MetaData] = {}


def run_migrations_offline() -> None:
    """Write SQL for every database, one section each; connect to nothing.

    Each section starts with a "-- Database <name>: <url>" line.
    """
    for database in offline_databases(settings):
        context.configure(
            url=database.url,
            target_metadata=target_metadata.get(database.name),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            # this database's part of the revision (upgrade_<name>())
            **database.configure_options(),
        )

        with context.begin_transaction():
            database.write_header()
            context.run_migrations(engine_name=database.name)


def do_run_migrations(connection: Connection, database: Database) -> None:
    """Migrate one database, inside the transaction the runner opened for it."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata.get(database.name),
        # this database's part of the revision (upgrade_<name>()), and the
        # transaction the runner opened for it (SQLite DDL included); your
        # include_name filter goes in
        # database.configure_options(connection, include_name=...)
        **database.configure_options(connection),
        # cookbook autogenerate recipes, switched in the config; add your own
        # with autogenerate_hooks(settings, include_object=...,
        # process_revision_directives=...)
        **autogenerate_hooks(settings, runs=database.runs),
    )

    with context.begin_transaction():
        context.run_migrations(engine_name=database.name)


def run_migrations_online() -> None:
    """Open every database, migrate each, then commit all or roll back all."""
    run_databases(settings, do_run_migrations)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
