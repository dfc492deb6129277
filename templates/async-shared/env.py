"""Alembic environment for async and sync engines, CLI or in-process (async-shared).

From the command line, sqlalchemy.url picks the driver: async URLs
(sqlite+aiosqlite://, postgresql+asyncpg://) run on an event loop, sync URLs
directly.  From application code, share your engine or connection:

    await alembic_recipes.upgrade_async(async_engine, config)  # in async apps

    # or: a Connection, Engine, AsyncEngine or AsyncConnection
    config.attributes["connection"] = connection
    command.upgrade(config, "head")

A synchronous command.upgrade() also works inside a running event loop.
"""

from alembic import context
from alembic_recipes import (
    Settings,
    autogenerate_hooks,
    configure_logging,
    connect_and_run,
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
settings = Settings.load(config)

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

    Async URLs work too: only the dialect is used.
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
        # one transaction for the whole run where DDL is transactional
        # (SQLite included); a transaction the caller opened on a shared
        # connection stays the caller's; your include_name filter goes in
        # settings.configure_options(connection, include_name=...)
        **settings.configure_options(connection),
        # cookbook autogenerate recipes, switched in the config; add your own
        # with autogenerate_hooks(settings, include_object=...,
        # process_revision_directives=...)
        **autogenerate_hooks(settings),
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode.

    Uses config.attributes["connection"] when a caller shares one (Connection,
    Engine, AsyncEngine or AsyncConnection), else sqlalchemy.url, sync or async.
    Never commits on its own inside a transaction the caller began.
    """
    connect_and_run(settings, do_run_migrations)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
