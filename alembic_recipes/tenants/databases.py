"""The ``database`` strategy: one database (or SQLite file) per tenant.

``sqlalchemy.url`` is a template with ``{tenant}`` in its database part.  A
missing database is created when the tenant may be (see ``create_tenants``);
when that tenant's migration then fails, the database or file created for it
is removed again, so a later run does not take it for an existing tenant.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from alembic import context
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from ..connections import (
    display_url,
    engine_from_options,
    failing_as,
    run_with_connection,
)
from .config import VERSION_TABLE, Tenant
from .discovery import admin_engine, server_databases
from .fleet import Fleet

__all__ = ["run_databases"]


def _database_exists(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        return database in ("", ":memory:") or Path(database).exists()
    return parsed.database in server_databases(url)


def _on_server(url: str, sql: str) -> None:
    """Run ``CREATE``/``DROP DATABASE`` for *url*'s database on its server."""
    parsed = make_url(url)

    def run(conn: Connection) -> None:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        name = conn.dialect.identifier_preparer.quote_identifier(parsed.database or "")
        conn.exec_driver_sql(sql.format(name=name))

    server = f"the server {display_url(parsed.set(database=None))}"
    with failing_as(f"{sql.split()[0]} DATABASE failed on {server}"):
        run_with_connection(admin_engine(url), run, owned=True, where=server)


class _Created:
    """What this run created for one tenant, to remove if its migration fails."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        self.path = Path(parsed.database or "")
        self.made_dirs: list[Path] = []

    def create(self) -> None:
        if not self.sqlite:
            _on_server(self.url, "CREATE DATABASE {name}")
            return
        for parent in reversed(self.path.parents):  # outermost first
            if not parent.exists():
                parent.mkdir()
                self.made_dirs.append(parent)

    def remove(self) -> None:
        if not self.sqlite:
            drop = "DROP DATABASE IF EXISTS {name}"
            with contextlib.suppress(CommandError):  # keep the migration's error
                _on_server(self.url, drop)
            return
        self.path.unlink(missing_ok=True)
        for directory in reversed(self.made_dirs):  # innermost first
            with contextlib.suppress(OSError):  # not empty: someone else's
                directory.rmdir()


def _versions(conn: Connection) -> list[str]:
    if not inspect(conn).has_table(VERSION_TABLE):
        return []
    return [
        str(v) for v in conn.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    ]


def run_databases(
    fleet: Fleet, migrate: Callable[[Connection, Tenant], None], config: Config
) -> None:
    """Migrate every selected tenant's database, one transaction each."""
    names = fleet.select(None)
    shared = config.attributes.get("connection")
    if shared is not None and len(names) != 1:
        raise CommandError(
            "config.attributes['connection'] is one database: with"
            f" tenant_strategy = database give one tenant (got {len(names)})"
        )
    options = dict(config.get_section(config.config_ini_section, {}))
    settings = fleet.settings

    def migrate_on(
        conn: Connection, tenant: Tenant
    ) -> tuple[list[str], list[str]] | None:
        caller_txn = conn.in_transaction()
        before = _versions(conn)
        if fleet.at_head(before):
            return None
        if not caller_txn and conn.in_transaction():
            conn.rollback()
        with conn.begin_nested() if caller_txn else conn.begin():
            migrate(conn, tenant)
            after = list(context.get_context().get_current_heads())
        return before, after

    missing_checked = False
    for index, name in enumerate(names, 1):
        tenant = settings.tenant(name)

        def work(tenant: Tenant = tenant) -> tuple[list[str], list[str]] | None:
            nonlocal missing_checked
            if shared is not None:
                return run_with_connection(shared, lambda c: migrate_on(c, tenant))
            created = None
            if not _database_exists(tenant.url):
                if not missing_checked:
                    fleet.load_listed(None, [tenant.name])
                    missing_checked = True
                if not fleet.may_create(tenant.name):
                    if fleet.command == "current":
                        return [], []
                    raise fleet.missing(tenant.name)
                created = _Created(tenant.url)
                created.create()
            try:
                engine = engine_from_options({**options, "sqlalchemy.url": tenant.url})
                return run_with_connection(
                    engine, lambda c: migrate_on(c, tenant), owned=True
                )
            except BaseException:
                if created is not None:
                    created.remove()
                raise

        if not fleet.run_one(index, name, work):
            break
