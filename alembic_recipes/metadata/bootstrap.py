"""A fresh database (or tenant schema) built from the metadata and stamped at head.

The cookbook's "Building an Up to Date Database from Scratch": ``create_all()``
then ``stamp head`` -- here in one transaction, so a failure leaves neither
tables without a version nor a version without tables.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from ..database.connections import (
    Connectable,
    run_with_connection,
    run_with_connection_async,
)
from ..tenants import schema_scope, validate_tenant

__all__ = ["create_all_and_stamp", "create_all_and_stamp_async"]


def _builder(
    config: Config, metadata: MetaData, schema: str | None, revision: str
) -> Callable[[Connection], None]:
    script = ScriptDirectory.from_config(config)
    if schema is not None:
        validate_tenant(schema, source="create_all_and_stamp(schema=...)")

    def build(conn: Connection) -> None:
        scope: AbstractContextManager[object]
        if schema is not None:  # a new tenant: its own schema, version table inside
            scope = schema_scope(conn, schema, create=True)
        elif conn.in_transaction():
            scope = conn.begin_nested()
        else:
            scope = conn.begin()
        with scope:
            metadata.create_all(conn)
            context = MigrationContext.configure(
                conn, opts={"version_table_schema": schema}
            )
            context.stamp(script, revision)

    return build


def create_all_and_stamp(
    config: Config,
    metadata: MetaData,
    connectable: Connectable,
    *,
    schema: str | None = None,
    revision: str = "heads",
) -> None:
    """``metadata.create_all()`` and ``stamp heads`` in one transaction.

    *schema*: build a new tenant of the multitenant template's schema strategy
    (PostgreSQL): the schema is created and selected, ``alembic_version`` goes
    inside it, and the (schema-less) metadata's tables land there.  Joins the
    caller's transaction (as a SAVEPOINT) when *connectable* has one open.
    """
    run_with_connection(connectable, _builder(config, metadata, schema, revision))


async def create_all_and_stamp_async(
    config: Config,
    metadata: MetaData,
    connectable: Connectable,
    *,
    schema: str | None = None,
    revision: str = "heads",
) -> None:
    """:func:`create_all_and_stamp` for async code, on the caller's event loop."""
    await run_with_connection_async(
        connectable, _builder(config, metadata, schema, revision)
    )
