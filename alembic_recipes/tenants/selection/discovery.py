"""Which tenants exist or are known: the ``tenants`` list, ``tenants_query``
and ``tenants_pattern`` of ``[alembic]``."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy import TextClause, text
from sqlalchemy.engine import URL, Connection, make_url

from ...database.connections import run_on_options, run_with_connection
from ...database.engines import display_url, engine_from_options
from ...database.errors import failing_as
from ..model.names import is_reserved, split_list, validate_all
from ..model.settings import TenantSettings
from ..model.tenant import RECORD_FILE

__all__ = [
    "admin_engine",
    "catalog",
    "existing_databases",
    "known_tenants",
    "listed_tenants",
    "server_databases",
    "server_of",
]


def listed_tenants(settings: TenantSettings, conn: Connection | None) -> list[str]:
    """The ``tenants`` list, then the rows of ``tenants_query``: the tenants
    that are meant to exist (created when missing, unless ``create = never``)."""
    names = list(settings.tenants)
    if settings.tenants_query:
        found = validate_all(_tenants_query(settings, conn), "tenants_query")
        names += [name for name in found if name != settings.shared]
    return list(dict.fromkeys(names))


def known_tenants(settings: TenantSettings, conn: Connection | None) -> list[str]:
    """``-x tenant=all``: :func:`listed_tenants`, then the existing schemas or
    databases matching ``tenants_pattern``; duplicates merged, order kept."""
    names = listed_tenants(settings, conn)
    pattern = settings.tenants_pattern
    if pattern:
        found = (
            _schemas(conn)
            if settings.strategy == "schema"
            else existing_databases(settings)
        )
        matched = sorted(
            n
            for n in found
            if fnmatch.fnmatchcase(n, pattern)
            and not is_reserved(n)
            and n != settings.shared  # the shared scope is no tenant
        )
        names += validate_all(matched, "tenants_pattern")
    return list(dict.fromkeys(names))


def _tenants_query(settings: TenantSettings, conn: Connection | None) -> list[object]:
    query = text(settings.tenants_query or "")
    if settings.tenants_url is None:
        assert conn is not None  # schema strategy: the shared database
        where = f"sqlalchemy.url ({display_url(conn.engine.url)})"
        with failing_as(f"tenants_query failed on {where}"):
            return _names(conn, query, where)
    return [row[0] for row in _on_tenants_url(settings.tenants_url, query, 1)]


def _tenants_url_label(url: str) -> str:
    """How errors name the ``tenants_url`` database (password masked)."""
    return f"tenants_url ({display_url(url)})"


def _on_tenants_url(
    url: str, query: TextClause, width: int
) -> list[tuple[object, ...]]:
    """*query*'s rows of *width* columns, run on the ``tenants_url`` database."""
    where = _tenants_url_label(url)
    with failing_as(f"tenants_query failed on {where}"):
        return run_on_options(
            {"sqlalchemy.url": url},
            lambda c: _rows(c, query, where, width),
            where=where,
            section="tenants_url",
        )


def _names(conn: Connection, query: TextClause, where: str) -> list[object]:
    """The one column of *query*'s rows; a query returning more columns is an
    error naming them (it is not silently cut to its first)."""
    return [row[0] for row in _rows(conn, query, where, 1)]


def _rows(
    conn: Connection, query: TextClause, where: str, width: int
) -> list[tuple[object, ...]]:
    """*query*'s rows, which must have *width* columns (an error naming them)."""
    result = conn.execute(query)
    columns = list(result.keys())
    if len(columns) != width:
        result.close()
        expected = (
            "one: the tenant name"
            if width == 1
            else "two with servers: the tenant name and its server"
        )
        raise CommandError(
            f"tenants_query on {where} returns {len(columns)} column"
            f"{'' if len(columns) == 1 else 's'} ({', '.join(columns)}); it must"
            f" return {expected}"
        )
    return [tuple(row) for row in result]


def catalog(settings: TenantSettings) -> dict[str, str]:
    """With ``servers``, ``tenants_query`` on ``tenants_url``: each tenant's
    server, from its two columns; {} without such a query.  A row naming a
    server that is not configured is an error naming both."""
    if not (settings.servers and settings.tenants_query and settings.tenants_url):
        return {}
    rows = _on_tenants_url(settings.tenants_url, text(settings.tenants_query), 2)
    where = _tenants_url_label(settings.tenants_url)
    configured = split_list(settings.configured_servers)
    placed: dict[str, str] = {}
    names = validate_all([name for name, _ in rows], "tenants_query")
    for name, (_, server) in zip(names, rows, strict=True):
        if str(server) not in configured:
            raise CommandError(
                f"tenants_query on {where} places tenant {name!r} on server"
                f" {server!r}, which is not one of servers ({', '.join(configured)})"
            )
        placed[name] = str(server)
    return placed


def _schemas(conn: Connection | None) -> list[str]:
    assert conn is not None
    sql = text("SELECT schema_name FROM information_schema.schemata")
    return [str(n) for n in conn.scalars(sql)]


def existing_databases(settings: TenantSettings) -> list[str]:
    """Tenant names whose database (or SQLite file) exists."""
    url = settings.tenant("PLACEHOLDER").url
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite":
        path = Path(database)
        if "PLACEHOLDER" not in path.name:
            raise CommandError(
                "tenants_pattern needs {tenant} in the file name of sqlalchemy.url"
            )
        before, _, after = path.name.partition("PLACEHOLDER")
        found = path.parent.glob(f"{before}*{after}") if path.parent.is_dir() else []
        names = [
            p.name[len(before) : len(p.name) - len(after)]
            for p in found
            if p.name != RECORD_FILE  # the run record, beside the tenants
        ]
    else:
        before, _, after = database.partition("PLACEHOLDER")
        names = [
            db[len(before) : len(db) - len(after)]
            for db in server_databases(url)
            if db.startswith(before) and db.endswith(after)
        ]
    return sorted(n for n in names if n)


def admin_engine(url: str) -> object:
    """An engine on the server's maintenance database (PostgreSQL: postgres;
    MySQL/MariaDB: none)."""
    parsed = make_url(url)
    admin = server_of(url)
    if parsed.get_backend_name() == "postgresql":
        admin = admin.set(database="postgres")
    return engine_from_options(
        {"sqlalchemy.url": admin.render_as_string(hide_password=False)}
    )


def server_of(url: str | URL) -> URL:
    """*url* without its database: the server (``URL.set(database=None)``
    would keep the database -- None there means unchanged)."""
    return make_url(url)._replace(database=None)


def server_databases(url: str) -> list[str]:
    """The databases on the server of *url*."""
    backend = make_url(url).get_backend_name()
    sql = (
        "SELECT datname FROM pg_database"
        if backend == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata"
    )
    server = f"the server {display_url(server_of(url))}"
    with failing_as(f"cannot list the databases on {server}"):
        return run_with_connection(
            admin_engine(url),
            lambda conn: [str(n) for n in conn.scalars(text(sql))],
            owned=True,
            where=server,
        )
