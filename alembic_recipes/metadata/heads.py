"""Is the database at head?  For application start-up and test suites."""

from __future__ import annotations

from collections.abc import Callable

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ..alembic_internals import VERSION_TABLE
from ..database.connections import (
    Connectable,
    own_read,
    run_with_connection,
    run_with_connection_async,
)

__all__ = ["check_at_head", "check_at_head_async"]


def _reader(
    config: Config, version_table: str, version_table_schema: str | None
) -> Callable[[Connection], bool]:
    heads = set(ScriptDirectory.from_config(config).get_heads())

    def at_head(conn: Connection) -> bool:
        with own_read(conn):  # leave a shared connection as we found it
            context = MigrationContext.configure(
                conn,
                opts={
                    "version_table": version_table,
                    "version_table_schema": version_table_schema,
                },
            )
            current = set(context.get_current_heads())
        return current == heads

    return at_head


def check_at_head(
    config: Config,
    connectable: Connectable,
    *,
    version_table: str = VERSION_TABLE,
    version_table_schema: str | None = None,
) -> bool:
    """True when the database's heads are exactly the scripts' heads.

    Compares sets, so branches count: a database on one of two heads is not
    at head.  *connectable*: a Connection, Engine, AsyncEngine or
    AsyncConnection (from async code, use :func:`check_at_head_async`).
    *version_table_schema*: e.g. a tenant's schema.
    """
    return run_with_connection(
        connectable, _reader(config, version_table, version_table_schema)
    )


async def check_at_head_async(
    config: Config,
    connectable: Connectable,
    *,
    version_table: str = VERSION_TABLE,
    version_table_schema: str | None = None,
) -> bool:
    """:func:`check_at_head` for async code, on the caller's event loop."""
    return await run_with_connection_async(
        connectable, _reader(config, version_table, version_table_schema)
    )
