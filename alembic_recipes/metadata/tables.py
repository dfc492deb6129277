"""Existing tables as Alembic code: the cookbook's "Print Python Code to
Generate Particular Database Tables", for adopting a database that has no
migrations yet.

``python -m alembic_recipes render-tables URL [TABLE ...]`` prints an
``upgrade()`` of ``op.create_table()`` / ``op.create_index()`` calls, in
foreign-key order, and the matching ``downgrade()``: paste both into the first
revision, then ``alembic stamp`` that revision on the existing database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from alembic.autogenerate import render_python_code
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Connection

from ..alembic_internals import VERSION_TABLE
from ..configuration.option_table import DATA_TABLE
from ..database.connections import run_with_connection
from ..database.engines import display_url, engine_from_options

__all__ = ["render_tables", "render_tables_from_url"]

VERSION_TABLES = frozenset({VERSION_TABLE, DATA_TABLE})
"""The version tables: never rendered, applied or dropped as the models' own."""
"""Alembic's bookkeeping: never part of what is adopted."""


def render_tables(
    connection: Connection,
    tables: Sequence[str] = (),
    *,
    schema: str | None = None,
) -> str:
    """Python code of ``upgrade()`` and ``downgrade()`` creating / dropping
    *tables* (default: every table but Alembic's version tables) as they are
    in *connection*'s database, indexes included, dependencies first.

    An unknown table name raises ``CommandError`` naming the tables there are.
    """
    wanted = _wanted(connection, tables, schema)
    metadata = MetaData()
    metadata.reflect(connection, schema=schema, only=wanted, resolve_fks=False)
    ordered = [t for t in metadata.sorted_tables if t.name in wanted]
    if connection.dialect.name == "postgresql":
        for table in ordered:
            _serial_without_sequence_default(table)
    context = MigrationContext.configure(connection)
    imports: set[str] = set()
    up = _render(_creating(ordered), context, imports)
    down = _render(_dropping(ordered), context, imports)
    header = "".join(f"{line}\n" for line in sorted(imports))
    return (
        f"{header}{chr(10) * 2 if header else ''}"
        f"def upgrade() -> None:\n    {up}\n\n\n"
        f"def downgrade() -> None:\n    {down}\n"
    )


def _wanted(
    connection: Connection, tables: Sequence[str], schema: str | None
) -> list[str]:
    """*tables* (default: every table but Alembic's version tables), each
    checked to be there; else ``CommandError`` naming the tables there are."""
    existing = inspect(connection).get_table_names(schema=schema)
    wanted = list(tables) or [name for name in existing if name not in VERSION_TABLES]
    missing = [name for name in wanted if name not in existing]
    if missing:
        where = f"schema {schema!r} of " if schema else ""
        raise CommandError(
            f"no table {', '.join(map(repr, missing))} in {where}"
            f"{display_url(connection.engine.url)}: it has"
            f" {', '.join(existing) or 'no tables'}"
        )
    return wanted


def _creating(ordered: list[Table]) -> ops.UpgradeOps:
    """The tables created, dependencies first, then their indexes."""
    return ops.UpgradeOps(
        [ops.CreateTableOp.from_table(t) for t in ordered]
        + [ops.CreateIndexOp.from_index(i) for t in ordered for i in _indexes(t)]
    )


def _dropping(ordered: list[Table]) -> ops.DowngradeOps:
    """The tables dropped, dependents first."""
    return ops.DowngradeOps([ops.DropTableOp.from_table(t) for t in reversed(ordered)])


_NEXTVAL = re.compile(r"nextval\('(?:[^']+\.)?\"?(\w+)\"?'::regclass\)")


def _serial_without_sequence_default(table: Table) -> None:
    """A SERIAL column reflects as ``server_default=nextval('t_id_seq')``,
    a sequence a new database lacks: render it as SERIAL alone (as
    autogenerate does, "assuming SERIAL and omitting")."""
    for column in table.columns:
        default = column.server_default
        arg = getattr(default, "arg", None)
        found = _NEXTVAL.fullmatch(str(getattr(arg, "text", arg) or ""))
        if found and found.group(1) == f"{table.name}_{column.name}_seq":
            column.server_default = None


def _indexes(table: Any) -> list[Any]:
    return sorted(table.indexes, key=lambda index: str(index.name))


def _render(
    operations: ops.UpgradeOps | ops.DowngradeOps,
    context: MigrationContext,
    imports: set[str],
) -> str:
    """Alembic's own rendering, collecting the imports it asks for (dialect
    types such as ``from sqlalchemy.dialects import mysql``)."""

    def render_item(kind: str, obj: Any, autogen: AutogenContext) -> Literal[False]:
        imports.update(autogen.imports)
        seen.append(autogen)
        return False  # Alembic renders the item itself

    seen: list[AutogenContext] = []
    code = render_python_code(
        operations, migration_context=context, render_item=render_item
    )
    for autogen in seen:
        imports.update(autogen.imports)
    return code


def render_tables_from_url(
    url: str, tables: Sequence[str] = (), *, schema: str | None = None
) -> str:
    """:func:`render_tables` on a database URL (sync or async driver)."""
    engine = engine_from_options({"sqlalchemy.url": url}, where="the command line")
    return run_with_connection(
        engine,
        lambda conn: render_tables(conn, tables, schema=schema),
        owned=True,
        where=f"the database {display_url(url)}",
    )
