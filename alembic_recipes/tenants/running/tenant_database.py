"""One tenant's database (database strategy): whether it exists, creating it
with the mark that says a run is creating it, and removing it again."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
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
    "copy_mysql",
    "copy_sqlite",
    "database_exists",
    "marked",
    "on_server",
    "unmark",
    "versions_in",
]


def database_exists(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return database in ("", ":memory:") or Path(database).exists()
    return parsed.database in server_databases(url)


def on_server(
    url: str, sql: str, admin: Connection | None = None, template: str | None = None
) -> None:
    """Run ``CREATE``/``DROP DATABASE`` for *url*'s database on its server:
    on *admin*, the connection holding the creation lock, when given -- so
    that a run killed meanwhile keeps the lock until its server session has
    finished the statement, and the next run finds the database made."""
    parsed = make_url(url)

    def run(conn: Connection) -> None:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        quote = conn.dialect.identifier_preparer.quote_identifier
        name = quote(parsed.database or "")
        version = conn.dialect.server_version_info or ()
        force = (
            " WITH (FORCE)"  # a killed run's backend may linger (PostgreSQL 13+)
            if conn.dialect.name == "postgresql" and version >= (13,)
            else ""
        )
        copied = quote(template) if template is not None else ""
        conn.exec_driver_sql(sql.format(name=name, force=force, template=copied))

    server = f"the server {display_url(server_of(url))}"
    with failing_as(f"{sql.split()[0]} DATABASE failed on {server}"):
        if admin is not None:
            run(admin)
            return
        run_with_connection(admin_engine(url), run, owned=True, where=server)


class Created:
    """One tenant database this run creates: made with the
    :data:`CREATING_TABLE` mark, removed again if its first migration fails."""

    def __init__(
        self, url: str, admin: Connection | None = None, template: str | None = None
    ) -> None:
        self.url = url
        self.admin = admin
        self.template = template
        """The template tenant's URL, when a copy of it is made (``provision
        = snapshot``): a copy is a whole tenant at the template's versions."""
        """The connection holding the creation lock (a server's database)."""
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.mysql = parsed.get_backend_name() in ("mysql", "mariadb")
        self.path = Path(parsed.database or "")
        self.made_dirs: list[Path] = []

    def create(self, options: dict[str, str], seed: Sequence[str] = ()) -> None:
        """Create the database (a SQLite file's directories), then mark it;
        or make it a copy of the template, in one step (no mark: a copy
        interrupted is not there at all)."""
        if self.sqlite:
            for parent in reversed(self.path.parents):  # outermost first
                try:
                    parent.mkdir()
                except FileExistsError:  # there already, or made by another run
                    continue
                self.made_dirs.append(parent)
        if self.template is not None and not self.mysql:
            self._copy_template()
            return
        if not self.sqlite:
            on_server(self.url, "CREATE DATABASE {name}", self.admin)
        engine = engine_from_options({**options, "sqlalchemy.url": self.url})
        template = make_url(self.template).database if self.template else None

        def mark(conn: Connection) -> None:
            with conn.begin():
                conn.execute(text(f"CREATE TABLE {CREATING_TABLE} (pid INTEGER)"))
            if template is not None:  # MySQL/MariaDB: its DDL, the mark kept
                copy_mysql(conn, template, seed)

        where = f"the new database ({display_url(self.url)})"
        run_with_connection(engine, mark, owned=True, where=where)

    def _copy_template(self) -> None:
        assert self.template is not None
        template = make_url(self.template)
        if self.sqlite:
            copy_sqlite(Path(template.database or ""), self.path)
            return
        sql = "CREATE DATABASE {name} TEMPLATE {template}"
        try:
            on_server(self.url, sql, self.admin, template=template.database)
        except CommandError as exc:
            if "being accessed by other users" not in str(exc):
                raise
            raise CommandError(
                f"provision = snapshot: the template database"
                f" {display_url(template)} has other sessions, and PostgreSQL"
                " copies a database only when nobody is connected to it; the"
                " template holds no customer's data, so keep applications and"
                " pools off it, and try again"
            ) from exc

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


def copy_mysql(conn: Connection, template: str, seed: Sequence[str]) -> None:
    """Make *conn*'s (new, empty) MySQL/MariaDB database a copy of database
    *template* on the same server: its tables, views and triggers as ``SHOW
    CREATE`` renders them, the rows of the *seed* tables, and its versions
    last (until they are there, the creating mark says the copy is
    unfinished)."""
    quote = conn.dialect.identifier_preparer.quote_identifier
    source = quote(template)
    objects = conn.execute(
        text(
            "SELECT table_name, table_type FROM information_schema.tables"
            " WHERE table_schema = :s ORDER BY table_name"
        ),
        {"s": template},
    ).all()
    tables = [str(n) for n, kind in objects if kind == "BASE TABLE"]
    views = [str(n) for n, kind in objects if kind == "VIEW"]
    triggers = conn.scalars(
        text(
            "SELECT trigger_name FROM information_schema.triggers"
            " WHERE trigger_schema = :s ORDER BY action_order, trigger_name"
        ),
        {"s": template},
    ).all()
    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
    try:
        for table in tables:
            if table != CREATING_TABLE:
                ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE {source}.{quote(table)}")
                conn.exec_driver_sql(ddl.one()[1])
        for view in views:  # its names unqualified: this database's
            ddl = conn.exec_driver_sql(f"SHOW CREATE VIEW {source}.{quote(view)}")
            conn.exec_driver_sql(ddl.one()[1].replace(f"{source}.", ""))
        for trigger in triggers:
            ddl = conn.exec_driver_sql(f"SHOW CREATE TRIGGER {source}.{quote(trigger)}")
            conn.exec_driver_sql(ddl.one()[2])
        conn.commit()  # (its DDL committed as it ran)
        for table in (*seed, VERSION_TABLE):
            conn.exec_driver_sql(
                f"INSERT INTO {quote(table)} SELECT * FROM {source}.{quote(table)}"
            )
        conn.commit()
    finally:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        conn.commit()


def copy_sqlite(template: Path, path: Path) -> None:
    """*path* made a consistent copy of the SQLite database *template* (the
    backup API: whatever another connection writes meanwhile), in one step:
    written beside it, then renamed into place."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.copying")
    source = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
        os.replace(partial, path)
    finally:
        source.close()
        partial.unlink(missing_ok=True)


class Unsettled(Exception):
    """The tenant's database holds no version yet: whether it is an empty
    tenant, one a run is creating, or one a run left unfinished is decided
    under the creation lock (reading the mark outside it would race the
    creator's DDL: MariaDB fails a ``DESCRIBE`` of a table being created)."""


def marked(conn: Connection) -> bool:
    """The database holds the creating mark (:data:`CREATING_TABLE`)."""
    return inspect(conn).has_table(CREATING_TABLE)


def unmark(conn: Connection) -> None:
    """Remove the creating mark: the new tenant's first migration (or its
    copy) has committed."""
    begin = conn.begin_nested if conn.in_transaction() else conn.begin
    with begin():
        conn.execute(text(f"DROP TABLE IF EXISTS {CREATING_TABLE}"))


def versions_in(conn: Connection) -> list[str]:
    if not inspect(conn).has_table(VERSION_TABLE):
        return []
    return [
        str(v) for v in conn.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    ]
