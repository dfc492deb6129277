"""What a tenant and a server are, and the tables and files kept beside them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alembic import context
from sqlalchemy.engine import URL, Connection

from ...alembic_internals import VERSION_TABLE, static_output
from ...configuration.filters import IncludeName
from ...configuration.settings import configure_arguments
from ...database.engines import display_url

__all__ = ["CREATING_TABLE", "MARK", "RECORD_FILE", "RECORD_TABLE", "Server", "Tenant"]

RECORD_TABLE = "alembic_recipes_fleet_run"
"""The fleet's run record (:mod:`..records.record`); autogenerate leaves it alone."""
RECORD_FILE = "alembic_recipes_fleet_run.db"
"""The run record's SQLite file, beside the tenants' files (database strategy)."""
CREATING_TABLE = "alembic_recipes_creating"
"""In a tenant database this package created, until its first migration has
committed (:mod:`..strategies.databases`)."""
MARK = "alembicrecipestenantmark"
"""Stands for ``{tenant}`` while a URL is parsed."""


@dataclass(frozen=True)
class Tenant:
    """One tenant, as env.py's migrate function sees it."""

    name: str
    strategy: str
    url: str = ""
    """The tenant's database URL (the shared database's for the schema
    strategy), password included: print :attr:`display_url` instead."""
    shared: bool = False
    """This is the shared scope (``shared_scope``), not a tenant: env.py
    compares ``shared_metadata`` and the revisions' ``upgrade_shared()`` run."""
    shared_schema: str | None = None
    """Schema strategy with a shared scope: the shared schema, on the tenant's
    ``search_path`` after its own (foreign keys to shared tables resolve)."""
    runs: int = 1
    """How many scopes this command migrates per env.py run (autogenerate
    waits for all of them before deciding a revision is empty)."""
    shared_tables: frozenset[str] = frozenset()
    """Autogenerate: the shared schema's tables the tenant sees through its
    search_path but does not have; not the tenant's to compare."""
    create: bool = False
    """Offline (``--sql``): the script creates the tenant's schema first."""
    server: str | None = None
    """With ``servers``: the server the tenant lives on."""
    extensions_schema: str | None = None
    """Schema strategy: where its migrations' extensions go, on its
    search_path after its own schema and the shared one (:mod:`.extensions`)."""

    @property
    def upgrade_token(self) -> str:
        """Template variable of autogenerate's upgrade ops for this scope."""
        return "shared_upgrades" if self.shared else "upgrades"

    @property
    def downgrade_token(self) -> str:
        """Template variable of autogenerate's downgrade ops for this scope."""
        return "shared_downgrades" if self.shared else "downgrades"

    @property
    def search_path(self) -> tuple[str, ...]:
        """Schema strategy: the schemas on the search_path while migrating."""
        if self.schema is None:
            return ()
        found = (self.schema, self.shared_schema, self.extensions_schema)
        return tuple(dict.fromkeys(name for name in found if name))

    @property
    def schema(self) -> str | None:
        """The tenant's schema (``version_table_schema``), None per database."""
        return self.name if self.strategy == "schema" else None

    @property
    def display_url(self) -> str:
        """:attr:`url` with the password masked."""
        return display_url(self.url)

    def configure_options(
        self,
        connection: Connection | None = None,
        *,
        include_name: IncludeName | None = None,
    ) -> dict[str, Any]:
        """The ``context.configure()`` arguments migrating this tenant needs:
        its own version table (``version_table_schema``: its schema, or None
        in its own database), the template variables autogenerate writes its
        part into, ``transactional_ddl`` for *connection* (online), and
        :meth:`include_name` combined with yours (*include_name*)."""
        return {
            "version_table_schema": self.schema,
            "upgrade_token": self.upgrade_token,
            "downgrade_token": self.downgrade_token,
            **configure_arguments(connection, self.include_name, include_name),
        }

    def include_name(
        self, name: str | None, type_: str, parent_names: Mapping[str, str | None]
    ) -> bool:
        """Autogenerate filter: hide the tenant's own version table, the
        fleet's run record, and the shared scope's tables (seen through the
        search_path)."""
        return not (
            type_ == "table"
            and (
                name in (VERSION_TABLE, RECORD_TABLE, CREATING_TABLE)
                or name in self.shared_tables
            )
        )

    def select_offline(self) -> None:
        """Offline: open the tenant's section of the script (and select its schema)."""
        what = "Shared scope" if self.shared else "Tenant"
        where = f" on server {self.server}" if self.server else ""
        if self.schema is None:
            static_output(
                f"-- {what} {self.name}{where}: database {self.display_url}\n"
            )
            return
        shown = f" ({self.display_url})" if self.server else ""
        static_output(f"-- {what} {self.name}{where}{shown}: schema {self.name}\n")
        quote = context.get_context().dialect.identifier_preparer.quote_identifier
        if self.create:
            context.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.name)}")
        path = ", ".join(quote(schema) for schema in self.search_path)
        context.execute(f"SET search_path TO {path}")


@dataclass(frozen=True)
class Server:
    """One of the ``servers``: its ``[name]`` section of the ini."""

    name: str
    url: URL
    """``sqlalchemy.url`` (marked ``{tenant}`` for the database strategy)."""
    tenants: tuple[str, ...] = ()
    """Its ``tenants`` list."""
    tenants_pattern: str | None = None
    """Its ``tenants_pattern`` (else ``[alembic]``'s)."""
    section: str = ""
    """Its ini section (``[eu1]``, or ``[alembic.eu1]`` beside ``alembic -n``)."""

    @property
    def display_url(self) -> str:
        """:attr:`url` with the password masked (``{tenant}`` as written)."""
        return display_url(self.url).replace(MARK, "{tenant}")
