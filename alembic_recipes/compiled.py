"""Opt-in fast fleet upgrades: compile a revision path once, replay it per tenant.

With ``compiled_upgrades = true`` (or ``-x compiled=true``), a schema-per-tenant
``upgrade`` renders the SQL of each distinct path (tenants at revision X going
to the destination) once, through Alembic's own offline (``--sql``) mode with a
placeholder schema, then executes that script for every tenant on that path,
in the tenant's own transaction.  Per tenant this costs about what running the
``--sql`` output by hand costs, instead of Alembic's per-operation Python work.

Only for migrations whose SQL does not depend on the tenant's data: a path
whose revisions read from the database (``op.get_bind().execute(...)``
results, an inspector) cannot be rendered offline and falls back, with a log
line, to the normal per-tenant run.  Python-side values (``datetime.now()``,
``uuid4()``) are computed once and shared by every tenant of the path.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.util.concurrency import await_only

__all__ = ["CompiledPaths", "execute_script"]

log = logging.getLogger("alembic.recipes.tenants")

PLACEHOLDER = "alembic-recipes-tenant"
"""Schema name compiled into the scripts; its '-' makes SQLAlchemy quote it."""


class CompiledPaths:
    """Upgrade scripts per starting revision, rendered on first use."""

    def __init__(self, script: ScriptDirectory, destination: str) -> None:
        self.script = script
        self.destination = destination
        self._scripts: dict[tuple[tuple[str, ...], bool], str | None] = {}

    def sql_for(
        self,
        conn: Connection,
        before: Sequence[str],
        schema: str,
        has_version_table: bool = False,
    ) -> str | None:
        """The SQL taking *schema* from *before* to the destination, or None when
        that path cannot be rendered offline (the caller migrates normally).

        *has_version_table*: the schema has its (empty) version table already,
        e.g. after a downgrade to base, so the script must not create it.
        """
        revisions = tuple(sorted(before))
        key = (revisions, has_version_table and not revisions)
        if key not in self._scripts:
            self._scripts[key] = self._render(conn, *key)
        sql = self._scripts[key]
        if sql is None:
            return None
        quote = conn.dialect.identifier_preparer.quote_identifier
        return sql.replace(quote(PLACEHOLDER), quote(schema))

    def _render(
        self, conn: Connection, before: tuple[str, ...], has_version_table: bool
    ) -> str | None:
        if len(before) > 1:
            log.info("compiled upgrades: several heads %s, migrating normally", before)
            return None
        buffer = io.StringIO()
        destination = self.destination

        def steps(heads: object, context: MigrationContext) -> object:
            # what `alembic upgrade` itself runs: the steps from heads to destination
            return self.script._upgrade_revs(destination, heads)  # type: ignore[arg-type]

        context = MigrationContext.configure(
            dialect=conn.dialect,
            opts={
                "as_sql": True,
                "output_buffer": buffer,
                "literal_binds": True,
                "transactional_ddl": False,  # the tenant's transaction is ours
                "version_table_schema": PLACEHOLDER,
                "starting_rev": before[0] if before else None,
                "destination_rev": destination,
                "fn": steps,
            },
        )
        if has_version_table:  # offline mode creates it when starting from base
            context._version.create = _no_create  # type: ignore[method-assign]
        try:
            with Operations.context(context):
                context.run_migrations()
        except Exception as exc:  # e.g. a revision reading data through op.get_bind()
            start = before[0] if before else "base"
            log.info(
                "compiled upgrades: %s -> %s cannot be rendered offline (%s: %s);"
                " migrating those tenants normally",
                start,
                destination,
                type(exc).__name__,
                exc,
            )
            return None
        log.info(
            "compiled upgrades: rendered %s -> %s once; replaying it per tenant",
            before[0] if before else "base",
            destination,
        )
        return buffer.getvalue()


def _no_create(*args: object, **kwargs: object) -> None:
    """Stands in for the version table's ``create()``: it exists already."""


def execute_script(conn: Connection, sql: str) -> None:
    """Run a multi-statement script inside *conn*'s open transaction."""
    if conn.dialect.driver == "asyncpg":
        # asyncpg takes several statements only through its own execute(); the
        # transaction is already open (the runner's set_config started it)
        driver = conn.connection.driver_connection
        assert driver is not None
        await_only(driver.execute(sql))
    else:
        conn.exec_driver_sql(sql)
