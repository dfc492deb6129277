"""Fleet upgrades that render a revision path once and replay it per tenant.

A schema-per-tenant ``upgrade`` to head renders the SQL of each distinct path
(tenants at revision X going to the destination) once, through Alembic's own
offline (``--sql``) mode with a placeholder schema, then executes that script
for every tenant on the path, in the tenant's own transaction, followed by one
version write -- instead of Alembic's per-operation Python work, its version
table probes and one version write per revision, for every tenant.

``compiled_upgrades`` (``-x compiled=``) chooses when:

* ``auto`` (the default): only paths whose SQL is provably the same for every
  tenant -- rendered twice, with two placeholder schemas, the scripts must be
  identical (so no ``uuid4()`` or ``now()`` computed in Python), read nothing
  from the database, and use no ``autocommit_block()``;
* ``true``: every path that can be rendered offline; Python-side values
  (``uuid4()``, ``datetime.now()``) are computed once and shared;
* ``false``: never; Alembic runs every tenant.

A path that cannot be replayed runs the normal way, with one log line saying
why: a revision that reads the database (``op.get_bind().execute(...)``
results, an inspector) keeps running against each tenant's own data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateTable
from sqlalchemy.util.concurrency import await_only

from ..alembic_internals import before_each_step, upgrade_steps, version_table
from ..connections import first_line
from ..logs import logger_for

__all__ = ["Compile", "CompiledPaths", "execute_script"]

log = logger_for(__name__)

Compile = Literal["auto", "always", "never"]

PLACEHOLDER = "alembic-recipes-tenant"
"""Schema name compiled into the scripts; its '-' makes SQLAlchemy quote it."""
_SECOND = "alembic-recipes-check"  # the second render's placeholder


class _Statements:
    """An output buffer keeping each statement Alembic writes, apart."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def write(self, text: str) -> int:
        self.items.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class CompiledPaths:
    """Upgrade scripts per starting revision, rendered on first use."""

    def __init__(
        self, script: ScriptDirectory, destination: str, mode: Compile = "auto"
    ) -> None:
        self.script = script
        self.destination = destination
        self.mode = mode
        self._scripts: dict[tuple[tuple[str, ...], bool], str | None] = {}
        self._running: str | None = None
        """The revision being rendered (to name it when it fails)."""

    def _entering(self, revision: str) -> None:
        self._running = revision

    def sql_for(
        self,
        dialect: Dialect,
        before: Sequence[str],
        schema: str,
        has_version_table: bool = False,
    ) -> str | None:
        """The SQL taking *schema* from *before* to the destination, version
        write included, or None when that path is not replayed (the caller
        migrates normally).

        *has_version_table*: the schema has its version table already (at base:
        empty, e.g. after a downgrade), so the script must not create it.
        """
        revisions = tuple(sorted(before))
        key = (revisions, has_version_table or bool(revisions))
        if key not in self._scripts:
            self._scripts[key] = self._compile(dialect, *key)
        sql = self._scripts[key]
        if sql is None:
            return None
        quote = dialect.identifier_preparer.quote_identifier
        return sql.replace(quote(PLACEHOLDER), quote(schema))

    def _compile(
        self, dialect: Dialect, before: tuple[str, ...], has_version_table: bool
    ) -> str | None:
        start = before[0] if before else "base"
        path = f"{start} -> {self.destination}"
        if len(before) > 1:
            return self._normally(path, f"several heads {', '.join(before)}")
        try:
            first, version = self._render(dialect, before, PLACEHOLDER)
            if self.mode == "auto":
                second, _ = self._render(dialect, before, _SECOND)
        except Exception as exc:  # e.g. a revision reading data through op.get_bind()
            cause = _first_raised(exc)  # not what broke while unwinding it
            where = f"revision {self._running}" if self._running else "it"
            reason = (
                f"cannot be rendered offline: {where} raised"
                f" {type(cause).__name__}: {first_line(cause)}"
            )
            return self._normally(path, reason)
        if any(s.strip().rstrip(";").upper() == "COMMIT" for s in first):
            return self._normally(path, "a revision uses autocommit_block()")
        if self.mode == "auto":
            quote = dialect.identifier_preparer.quote_identifier
            again = [s.replace(quote(_SECOND), quote(PLACEHOLDER)) for s in second]
            if again != first:
                reason = (
                    "its SQL differs from one rendering to the next (a value"
                    " computed in Python, such as uuid4() or now())"
                )
                return self._normally(path, reason)
        body = [s for s in first if not _is_bookkeeping(s, version)]
        writes = _version_writes(
            dialect, version, before, self.destination, has_version_table
        )
        log.info("fleet upgrade: rendered %s once; replaying it per tenant", path)
        return "".join([*body, *writes])

    def _normally(self, path: str, reason: str) -> str | None:
        """Log why *path* is not replayed; None (no script)."""
        log.info(
            "fleet upgrade: %s %s; Alembic runs each tenant on that path instead",
            path,
            reason,
        )
        return None

    def _render(
        self, dialect: Dialect, before: tuple[str, ...], schema: str
    ) -> tuple[list[str], Table]:
        """The statements of the path, one per item, for placeholder *schema*."""
        buffer = _Statements()
        destination = self.destination

        self._running = None

        def steps(heads: object, context: MigrationContext) -> object:
            # what `alembic upgrade` itself runs: the steps from heads to destination
            found = list(upgrade_steps(self.script, destination, heads))
            before_each_step(found, self._entering)
            return found

        context = MigrationContext.configure(
            dialect=dialect,
            opts={
                "as_sql": True,
                "output_buffer": buffer,
                "literal_binds": True,
                # the tenant's transaction is ours: only autocommit_block()
                # writes COMMIT (and BEGIN) into the script
                "transactional_ddl": True,
                "version_table_schema": schema,
                "starting_rev": before[0] if before else None,
                "destination_rev": destination,
                "fn": steps,
            },
        )
        with Operations.context(context), _quiet():
            context.run_migrations()
        return buffer.items, version_table(context)


class _ThisThreadsInfo(logging.Filter):
    """Drops INFO (and lower) records logged by one thread."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or record.levelno > logging.INFO


@contextmanager
def _quiet() -> Iterator[None]:
    """Rendering is no migration: keep Alembic's "Running upgrade" lines of
    this render out of the log, changing no logger's level (other threads
    migrating meanwhile log as usual)."""
    logger = logging.getLogger("alembic.runtime.migration")
    quiet = _ThisThreadsInfo()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _is_bookkeeping(statement: str, version: Table) -> bool:
    """Alembic's comments and its version-table statements (replaced by ours)."""
    text = statement.lstrip()
    return text.startswith("--") or _qualified(version) in text.split("(")[0]


def _qualified(version: Table) -> str:
    return f'"{version.schema}".{version.name}'


def _version_writes(
    dialect: Dialect,
    version: Table,
    before: tuple[str, ...],
    destination: str,
    has_table: bool,
) -> list[str]:
    """One version write (after creating the table, from base)."""

    def render(clause: object) -> str:
        compiled = clause.compile(  # type: ignore[attr-defined]
            dialect=dialect, compile_kwargs={"literal_binds": True}
        )
        return f"{str(compiled).strip()};\n\n"

    column = version.c.version_num
    if before:
        write = version.update().where(column == before[0])
        return [render(write.values(version_num=destination))]
    create = [] if has_table else [render(CreateTable(version))]
    return [*create, render(version.insert().values(version_num=destination))]


def _first_raised(exc: BaseException) -> BaseException:
    """The exception that started *exc*'s chain: rendering offline fails in
    a revision, and Alembic's cleanup can fail again on the mock connection
    (``'MockConnection' object has no attribute 'close'``)."""
    seen = {id(exc)}
    while True:
        earlier = exc.__cause__ or exc.__context__
        if earlier is None or id(earlier) in seen:
            return exc
        seen.add(id(earlier))
        exc = earlier


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
