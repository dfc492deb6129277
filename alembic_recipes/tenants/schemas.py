"""The ``schema`` strategy: one PostgreSQL database, one schema per tenant.

Per tenant, in its own transaction, the tenant's schema is the only one on
the ``search_path`` (``set_config(..., true)``: a bound parameter, undone when
the transaction ends, nothing formatted into SQL), and env.py migrates with
``version_table_schema=<tenant>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from alembic import context
from sqlalchemy import (
    String,
    bindparam,
    column,
    func,
    literal,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from ..compiled import CompiledPaths, execute_script
from .config import VERSION_TABLE, Tenant
from .fleet import Fleet

__all__ = ["run_schemas", "schema_scope"]


def _schema_state(
    conn: Connection, names: Sequence[str]
) -> tuple[set[str], set[str], dict[str, list[str]]]:
    """Existing schemas among *names*, those with a version table, and their
    versions: two queries in all."""
    if not names:
        return set(), set(), {}
    rows = conn.execute(
        text(
            "SELECT n.nspname, c.relname IS NOT NULL FROM pg_namespace n"
            " LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = :table"
            " AND c.relkind IN ('r', 'p') WHERE n.nspname IN :names"
        ).bindparams(bindparam("names", expanding=True)),
        {"table": VERSION_TABLE, "names": list(names)},
    ).all()
    existing = {str(schema) for schema, _ in rows}
    with_table = {str(schema) for schema, has_table in rows if has_table}
    versions: dict[str, list[str]] = {}
    if with_table:
        query = union_all(
            *(
                select(
                    literal(schema, String).label("tenant"),
                    table(
                        VERSION_TABLE, column("version_num"), schema=schema
                    ).c.version_num,
                )
                for schema in sorted(with_table)
            )
        )
        for tenant, version in conn.execute(query):
            versions.setdefault(tenant, []).append(version)
    return existing, with_table, versions


@contextmanager
def _default_schema(conn: Connection, schema: str) -> Iterator[None]:
    """Reflection (autogenerate) defaults to the tenant's schema meanwhile."""
    dialect = conn.dialect
    previous = dialect.default_schema_name
    dialect.default_schema_name = schema
    try:
        yield
    finally:
        dialect.default_schema_name = previous


def _search_path(conn: Connection, value: str) -> None:
    conn.execute(select(func.set_config("search_path", value, True)))


@contextmanager
def schema_scope(
    conn: Connection, schema: str, *, create: bool = False
) -> Iterator[None]:
    """A transaction in which *schema* is the only schema on the search_path.

    Its own transaction, or a SAVEPOINT when the caller's transaction is open
    (the caller's search_path is restored afterwards).  *create* creates the
    schema first.  Reflection defaults to the schema meanwhile.
    """
    caller_txn = conn.in_transaction()
    previous = (
        conn.scalar(select(func.current_setting("search_path"))) if caller_txn else ""
    )
    with conn.begin_nested() if caller_txn else conn.begin():
        if create:
            conn.execute(CreateSchema(schema, if_not_exists=True))
        _search_path(conn, conn.dialect.identifier_preparer.quote_identifier(schema))
        with _default_schema(conn, schema):
            yield
    if caller_txn:
        _search_path(conn, str(previous))


def run_schemas(
    fleet: Fleet, migrate: Callable[[Connection, Tenant], None], conn: Connection
) -> None:
    """Migrate every selected tenant's schema on *conn*, one transaction each."""
    settings = fleet.settings
    caller_txn = conn.in_transaction()  # before we touch it: whose transaction?
    names = fleet.select(conn)
    existing, with_table, versions = _schema_state(conn, names)
    fleet.load_listed(conn, [n for n in names if n not in existing])
    if not caller_txn:
        # end the transaction our reads began: Alembic would take an open
        # transaction for the caller's and never commit it (silent rollback)
        conn.rollback()
    compiled = (
        CompiledPaths(fleet.script, fleet.targets[0])
        if settings.compiled and fleet.command == "upgrade" and len(fleet.targets) == 1
        else None
    )

    for index, name in enumerate(names, 1):

        def work(name: str = name) -> tuple[list[str], list[str]] | None:
            before = versions.get(name, [])
            missing = name not in existing
            if not missing and fleet.at_head(before):
                return None
            if missing and not fleet.may_create(name):
                if fleet.command == "current":
                    return before, before
                raise fleet.missing(name)
            has_table = name in with_table
            sql = compiled.sql_for(conn, before, name, has_table) if compiled else None
            with schema_scope(conn, name, create=missing):
                if sql is not None:
                    execute_script(conn, sql)
                    after = [fleet.targets[0]]
                else:
                    migrate(conn, settings.tenant(name))
                    after = list(context.get_context().get_current_heads())
            existing.add(name)
            return before, after

        if not fleet.run_one(index, name, work):
            break
