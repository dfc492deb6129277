"""The end of a tenant, and a new name for one: :func:`drop_tenant`,
:func:`rename_tenant` (and ``python -m alembic_recipes tenant drop|rename``).

Both refuse unless *confirm* repeats the tenant's name, check names like
every command, take the tenant's migration lock (a fleet run migrating it
finishes first), and keep the run record true: a dropped tenant's rows go, a
renamed tenant's rows take its new name -- in the same transaction as the
schema's change on the schema strategy.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import Connection, make_url

from ..database.connections import Connectable, run_on, run_on_options
from ..database.engines import display_url
from ..logs import logger_for
from .model.names import exists, validate_tenant
from .model.settings import TenantSettings
from .records.record import forget_tenant, record_location
from .running.schema_state import schema_exists
from .running.snapshots import quoted, tenant_lock
from .running.tenant_database import database_exists, on_server

__all__ = ["drop_tenant", "rename_tenant"]

log = logger_for(__name__)


def _checked(
    config: Config, name: str, confirm: str | None, what: str
) -> TenantSettings:
    validate_tenant(name, source=f"{what}()")
    if confirm != name:
        raise CommandError(
            f"{what}: {name!r} not confirmed (got confirm={confirm!r}): repeat the"
            f" tenant's name as confirm={name!r} (--confirm {name})"
        )
    settings = TenantSettings.load(config)
    if name == settings.shared:
        raise CommandError(f"{what}: {name!r} is the shared scope, not a tenant")
    return settings


def drop_tenant(
    connectable: Connectable | None, name: str, *, config: Config, confirm: str | None
) -> None:
    """Drop tenant *name* -- its schema (``CASCADE``) or its database -- and
    its rows of the run record.  *confirm* must repeat *name*."""
    settings = _checked(config, name, confirm, "drop_tenant")
    timeout = settings.migration_lock_timeout
    if settings.strategy == "schema":

        def drop(conn: Connection) -> None:
            with conn.begin():
                tenant_lock(conn, name, timeout)
                if not schema_exists(conn, name):
                    raise CommandError(
                        f"drop_tenant: no tenant {name!r} (no such schema)"
                    )
                conn.exec_driver_sql(f"DROP SCHEMA {quoted(name)} CASCADE")
                forget_tenant(
                    conn, settings.shared or conn.dialect.default_schema_name, name
                )

        run_on(connectable, settings.section_options(), drop)
    else:
        url = settings.tenant(name).url
        if not database_exists(url):
            raise CommandError(
                f"drop_tenant: no tenant {name!r} (no database {display_url(url)})"
            )
        if make_url(url).get_backend_name() == "sqlite":
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{make_url(url).database}{suffix}").unlink(missing_ok=True)
        else:
            on_server(url, "DROP DATABASE {name}")
        _forget_in_record(settings, name)
    log.info("tenant %r: dropped", name)


def rename_tenant(
    connectable: Connectable | None,
    name: str,
    new: str,
    *,
    config: Config,
    confirm: str | None,
) -> None:
    """Give tenant *name* the name *new*: its schema (or database) renamed,
    its history and rows of the run record with it.  *confirm* must repeat
    *name*; *new* must not exist."""
    settings = _checked(config, name, confirm, "rename_tenant")
    validate_tenant(new, source="rename_tenant()")
    timeout = settings.migration_lock_timeout
    if settings.strategy == "schema":

        def rename(conn: Connection) -> None:
            with conn.begin():
                for each in sorted((name, new)):  # (one order: no deadlock)
                    tenant_lock(conn, each, timeout)
                if not schema_exists(conn, name):
                    raise CommandError(
                        f"rename_tenant: no tenant {name!r} (no such schema)"
                    )
                if schema_exists(conn, new):
                    raise exists(new, "schema")
                conn.exec_driver_sql(
                    f"ALTER SCHEMA {quoted(name)} RENAME TO {quoted(new)}"
                )
                schema = settings.shared or conn.dialect.default_schema_name
                forget_tenant(conn, schema, name, renamed=new)

        run_on(connectable, settings.section_options(), rename)
    else:
        old_url, new_url = settings.tenant(name).url, settings.tenant(new).url
        if not database_exists(old_url):
            raise CommandError(
                f"rename_tenant: no tenant {name!r}"
                f" (no database {display_url(old_url)})"
            )
        if database_exists(new_url):
            raise exists(new, "database")
        backend = make_url(old_url).get_backend_name()
        if backend == "sqlite":
            os.rename(str(make_url(old_url).database), str(make_url(new_url).database))
        elif backend == "postgresql":
            target = make_url(new_url).database
            on_server(
                old_url, "ALTER DATABASE {name} RENAME TO {template}", template=target
            )
        else:
            raise CommandError(
                "rename_tenant: MariaDB/MySQL cannot rename a database; provision"
                " the new name, copy the data, then drop the old tenant"
            )
        _forget_in_record(settings, name, renamed=new)
    log.info("tenant %r: renamed %r", name, new)


def _forget_in_record(
    settings: TenantSettings, name: str, renamed: str | None = None
) -> None:
    """The database strategy's record (where it has one): *name*'s rows."""
    url, schema = record_location(settings)
    if url is None or not database_exists(url):
        return

    def forget(conn: Connection) -> None:
        with conn.begin():
            forget_tenant(conn, schema, name, renamed)

    run_on_options(
        {"sqlalchemy.url": url}, forget, where=f"the run record {display_url(url)}"
    )
