"""One tenant's database (database strategy): whether it exists, creating it
with the mark that says a run is creating it, and removing it again."""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from ...alembic_internals import VERSION_TABLE
from ...database.connections import run_with_connection
from ...database.engines import display_url, engine_from_options
from ...database.errors import failing_as
from ...database.locks import LOCK_FILE_SUFFIX
from ..model.tenant import CREATING_TABLE
from ..selection.discovery import (
    admin_engine,
    server_databases,
    server_of,
)

__all__ = [
    "Created",
    "Unsettled",
    "database_exists",
    "marked",
    "on_server",
    "versions_in",
]


def database_exists(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return database in ("", ":memory:") or Path(database).exists()
    return parsed.database in server_databases(url)


def on_server(url: str, sql: str, admin: Connection | None = None) -> None:
    """Run ``CREATE``/``DROP DATABASE`` for *url*'s database on its server:
    on *admin*, the connection holding the creation lock, when given -- so
    that a run killed meanwhile keeps the lock until its server session has
    finished the statement, and the next run finds the database made."""
    parsed = make_url(url)

    def run(conn: Connection) -> None:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        name = conn.dialect.identifier_preparer.quote_identifier(parsed.database or "")
        version = conn.dialect.server_version_info or ()
        force = (
            " WITH (FORCE)"  # a killed run's backend may linger (PostgreSQL 13+)
            if conn.dialect.name == "postgresql" and version >= (13,)
            else ""
        )
        conn.exec_driver_sql(sql.format(name=name, force=force))

    server = f"the server {display_url(server_of(url))}"
    with failing_as(f"{sql.split()[0]} DATABASE failed on {server}"):
        if admin is not None:
            run(admin)
            return
        run_with_connection(admin_engine(url), run, owned=True, where=server)


class Created:
    """One tenant database this run creates: made with the
    :data:`CREATING_TABLE` mark, removed again if its first migration fails."""

    def __init__(self, url: str, admin: Connection | None = None) -> None:
        self.url = url
        self.admin = admin
        """The connection holding the creation lock (a server's database)."""
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.path = Path(parsed.database or "")
        self.made_dirs: list[Path] = []

    def create(self, options: dict[str, str]) -> None:
        """Create the database (a SQLite file's directories), then mark it."""
        if not self.sqlite:
            on_server(self.url, "CREATE DATABASE {name}", self.admin)
        else:
            for parent in reversed(self.path.parents):  # outermost first
                try:
                    parent.mkdir()
                except FileExistsError:  # there already, or made by another run
                    continue
                self.made_dirs.append(parent)
        engine = engine_from_options({**options, "sqlalchemy.url": self.url})

        def mark(conn: Connection) -> None:
            with conn.begin():
                conn.execute(text(f"CREATE TABLE {CREATING_TABLE} (pid INTEGER)"))

        where = f"the new database ({display_url(self.url)})"
        run_with_connection(engine, mark, owned=True, where=where)

    def remove(self) -> None:
        if not self.sqlite:
            drop = "DROP DATABASE IF EXISTS {name}{force}"
            with contextlib.suppress(CommandError):  # keep the migration's error
                on_server(self.url, drop)
            return
        for suffix in ("", "-journal", "-wal", "-shm", LOCK_FILE_SUFFIX):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for directory in reversed(self.made_dirs):  # innermost first
            with contextlib.suppress(OSError):  # not empty: someone else's
                directory.rmdir()


class Unsettled(Exception):
    """The tenant's database holds no version yet: whether it is an empty
    tenant, one a run is creating, or one a run left unfinished is decided
    under the creation lock (reading the mark outside it would race the
    creator's DDL: MariaDB fails a ``DESCRIBE`` of a table being created)."""


def marked(conn: Connection) -> bool:
    """The database holds the creating mark (:data:`CREATING_TABLE`)."""
    return inspect(conn).has_table(CREATING_TABLE)


def versions_in(conn: Connection) -> list[str]:
    if not inspect(conn).has_table(VERSION_TABLE):
        return []
    return [
        str(v) for v in conn.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    ]
