"""Bring a database to a ``MetaData`` without a revision file: the cookbook's
"Run Alembic Operation Objects Directly", for test and development databases.

:func:`apply_metadata` runs autogenerate's comparison, refuses -- before any
SQL -- to drop tables or columns unless told to, then invokes each operation
in one transaction (SQLite included; MySQL/MariaDB commit each DDL statement
themselves).  Never point it at production: that is what revisions are for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from alembic.autogenerate import produce_migrations
from alembic.operations import Operations, ops
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

from ..database.connections import connect_engine, own_read
from ..database.engines import display_url
from ..logs import logger_for
from .tables import VERSION_TABLES

__all__ = ["apply_metadata"]

log = logger_for(__name__)

_DESTRUCTIVE = (ops.DropTableOp, ops.DropColumnOp)


def apply_metadata(
    connectable: Connection | Engine,
    metadata: MetaData,
    *,
    allow_drops: bool = False,
    include_name: Callable[..., bool] | None = None,
    compare_type: bool = True,
) -> list[ops.MigrateOperation]:
    """Make *connectable*'s database match *metadata*; return what was run.

    The differences are those ``alembic revision --autogenerate`` would write
    (Alembic's version tables never count).  Tables or columns the database
    has and *metadata* lacks are dropped only with ``allow_drops=True``;
    otherwise a ``CommandError`` names them and nothing is sent.  Everything
    runs in one transaction -- a SAVEPOINT inside the caller's -- so a
    failure leaves the database as it was (MySQL/MariaDB DDL excepted).
    SQLite tables are altered with batch mode (copy and move).  An async
    caller runs it with ``await connection.run_sync(apply_metadata, metadata)``.
    """
    if isinstance(connectable, Engine):
        with connect_engine(connectable, display_url(connectable.url)) as conn:
            return apply_metadata(
                conn,
                metadata,
                allow_drops=allow_drops,
                include_name=include_name,
                compare_type=compare_type,
            )
    conn = connectable
    batch = conn.dialect.name == "sqlite"
    callers = conn.in_transaction()

    def included(name: str | None, kind: str, parent: dict[str, Any]) -> bool:
        if kind == "table" and name in VERSION_TABLES:
            return False
        return include_name is None or bool(include_name(name, kind, parent))

    with own_read(conn):  # the reflection's transaction; ours begins below
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": included,
                "compare_type": compare_type,
                "render_as_batch": batch,
            },
        )
        script = produce_migrations(context, metadata)
    steps = list(_leaves(script.upgrade_ops)) if script.upgrade_ops else []
    drops = [_describe(op) for _, op in steps if isinstance(op, _DESTRUCTIVE)]
    if drops and not allow_drops:
        raise CommandError(
            f"apply_metadata() would drop {', '.join(drops)} in"
            f" {display_url(conn.engine.url)}: pass allow_drops=True to drop"
            " them, or add them to the metadata; nothing was changed"
        )
    if not steps:
        return []
    operations = Operations(context)
    with _transaction(conn, callers):
        for container, op in steps:
            log.info("Applying %s", _describe(op))
            if batch and isinstance(container, ops.ModifyTableOps):
                with operations.batch_alter_table(
                    container.table_name, schema=container.schema
                ) as batch_ops:
                    batch_ops.invoke(op)
            else:
                operations.invoke(op)
    return [op for _, op in steps]


def _leaves(
    container: ops.OpContainer,
) -> Iterator[tuple[ops.OpContainer, ops.MigrateOperation]]:
    """Each operation with the container holding it, in order."""
    for op in container.ops:
        if isinstance(op, ops.OpContainer):
            yield from _leaves(op)
        else:
            yield container, op


def _describe(op: ops.MigrateOperation) -> str:
    if isinstance(op, ops.DropTableOp):
        return f"table {op.table_name!r}"
    if isinstance(op, ops.DropColumnOp):
        return f"column {op.table_name}.{op.column_name}"
    table = getattr(op, "table_name", None)
    name = type(op).__name__.removesuffix("Op")
    return f"{name} {table}" if table else name


@contextmanager
def _transaction(conn: Connection, callers: bool) -> Iterator[None]:
    """A SAVEPOINT in the caller's transaction (none on MySQL/MariaDB, whose
    DDL ends it anyway), else a transaction of our own (begun explicitly on
    SQLite, whose driver would autocommit DDL)."""
    if callers:
        if conn.dialect.name in ("mysql", "mariadb"):
            yield
            return
        with conn.begin_nested():
            yield
        return
    with conn.begin():
        dbapi = conn.connection.dbapi_connection
        if conn.dialect.name == "sqlite" and not getattr(dbapi, "in_transaction", 1):
            conn.exec_driver_sql("BEGIN")
        yield
