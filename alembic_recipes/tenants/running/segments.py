"""A replayed upgrade script: its segments, its version write, running it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable
from sqlalchemy.util.concurrency import await_only

from ...database.blocking import narrow_to_statement
from ...database.errors import first_line

__all__ = [
    "PLACEHOLDER",
    "Segment",
    "execute_script",
    "is_bookkeeping",
    "replayed",
    "version_writes",
]


_SHOWN = 10
"""Lines of a failed replayed script shown at its start and at its end."""


PLACEHOLDER = "alembic-recipes-tenant"
"""Schema name compiled into the scripts; its '-' makes SQLAlchemy quote it."""


@dataclass(frozen=True)
class Segment:
    """A stretch of an upgrade path ending at revision :attr:`stop`: replayed
    (:attr:`sql`, its version write included, for the placeholder schema)
    or, :attr:`sql` None, run by Alembic."""

    stop: str
    sql: str | None = None
    span: str = ""
    """The revisions replayed, as ``start -> stop``."""

    def for_schema(self, dialect: Dialect, schema: str) -> Segment:
        """This segment with *schema* in place of the placeholder."""
        if self.sql is None:
            return self
        quote = dialect.identifier_preparer.quote_identifier
        sql = self.sql.replace(quote(PLACEHOLDER), quote(schema))
        return Segment(self.stop, sql, self.span)

    def explain(self, exc: BaseException) -> None:
        """*exc* ended this replayed script: name the statement it most
        likely came from -- a lock timeout's, the one touching what another
        session held; another error's, the first naming every object its
        message quotes -- as the driver error's SQL (else the script's start
        and end), and say so in a note (the traceback shows it)."""
        sql = self.sql or ""
        statements = [s.strip() for s in sql.split(";\n\n") if s.strip()]
        narrow_to_statement(exc, statements)
        lines = sql.strip().splitlines()
        named = _statement_named(exc, statements)
        where = f"the replayed script of {self.span}, {len(lines)} lines of SQL"
        if named is not None:
            where += "; its statement shown is the first that names what the error"
            where += " names"
        exc.add_note(
            f"(in {where}; -x compiled=false runs each revision through Alembic"
            " instead, naming the revision and the statement)"
        )
        if not isinstance(exc, DBAPIError):
            return
        if named is not None:
            exc.statement = named
        elif len(lines) > _SHOWN * 2:
            hidden = len(lines) - _SHOWN * 2
            exc.statement = "\n".join(
                [*lines[:_SHOWN], f"-- ... {hidden} more lines ...", *lines[-_SHOWN:]]
            )


_QUOTED = re.compile(r'"([^"]+)"')


def _statement_named(exc: BaseException, statements: list[str]) -> str | None:
    """The first of *statements* that names every object the driver's
    message quotes (``relation "b" already exists``), if it quotes any."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None
    names = set(_QUOTED.findall(first_line(orig)))
    if not names:
        return None
    for statement in statements:
        found = {q or w for q, w in _IDENTIFIER.findall(statement)}
        if names <= found:
            return statement
    return None


_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')


def is_bookkeeping(statement: str, version: Table) -> bool:
    """Alembic's comments and its version-table statements (replaced by ours)."""
    text = statement.lstrip()
    return text.startswith("--") or _qualified(version) in text.split("(")[0]


def _qualified(version: Table) -> str:
    return f'"{version.schema}".{version.name}'


def version_writes(
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


def execute_script(conn: Connection, sql: str) -> None:
    """Run a multi-statement script inside *conn*'s open transaction."""
    if conn.dialect.driver == "asyncpg":
        # asyncpg takes several statements only through its own execute(); the
        # transaction is already open (the runner's set_config started it)
        driver = conn.connection.driver_connection
        assert driver is not None
        await_only(driver.execute(sql))
    else:  # the script as it is: no parameters, so '%' means '%' (psycopg2)
        conn.exec_driver_sql(sql, execution_options={"no_parameters": True})


def replayed(
    dialect: Dialect,
    version: Table,
    statements: list[str],
    start: tuple[str, ...],
    end: str,
    has_table: bool,
) -> Segment:
    """The replayed segment of *statements* from *start* to *end*, with its
    version write."""
    writes = version_writes(dialect, version, start, end, has_table)
    span = f"{start[0] if start else 'base'} -> {end}"
    return Segment(end, "".join([*statements, *writes]), span)
