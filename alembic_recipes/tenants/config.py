"""The multitenant template's options, read once, and the tenants they describe.

``schema`` strategy: ``sqlalchemy.url`` is one PostgreSQL database; each
tenant is a schema in it.  ``database`` strategy: ``sqlalchemy.url`` is a
template whose database part holds ``{tenant}``
(``sqlite:///%(here)s/tenants/{tenant}.db``, ``postgresql+asyncpg://h/app_{tenant}``).
``{tenant}`` is read from the ini text as written, so a ``{tenant}`` that
``%(here)s`` expands to (a project in ``/srv/{tenant}/``) is left alone.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Sequence
from configparser import BasicInterpolation
from dataclasses import dataclass
from typing import Any, Literal

from alembic import context
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import URL, make_url

from ..compiled import Compile
from ..connections import display_url
from ..settings import OptionReader, Settings
from .names import ALL, split_list, validate_all

__all__ = ["STRATEGIES", "Tenant", "TenantSettings"]

STRATEGIES = ("schema", "database")
VERSION_TABLE = "alembic_version"
HOW_TO_CHOOSE = (
    "pass -x tenant=NAME[,NAME...] or -x tenant=all (the tenants known from"
    " tenants / tenants_query / tenants_pattern in [alembic]),"
    " or set config.attributes['tenant']"
)
_MARK = "alembicrecipestenantmark"  # stands for {tenant} while the URL is parsed
Create = Literal["always", "known", "never"]
_CREATE_WORDS = {"known": "known"}


@dataclass(frozen=True)
class Tenant:
    """One tenant, as env.py's migrate function sees it."""

    name: str
    strategy: str
    url: str = ""
    """The tenant's database URL (the shared database's for the schema
    strategy), password included: print :attr:`display_url` instead."""

    @property
    def schema(self) -> str | None:
        """The tenant's schema (``version_table_schema``), None per database."""
        return self.name if self.strategy == "schema" else None

    @property
    def display_url(self) -> str:
        """:attr:`url` with the password masked."""
        return display_url(self.url)

    def include_name(
        self, name: str | None, type_: str, parent_names: dict[str, str | None]
    ) -> bool:
        """Autogenerate filter: hide the tenant's own version table."""
        return not (type_ == "table" and name == VERSION_TABLE)

    def select_offline(self) -> None:
        """Offline: open the tenant's section of the script (and select its schema)."""
        impl = context.get_context().impl
        if self.schema is None:
            impl.static_output(f"-- Tenant {self.name}: database {self.display_url}\n")
            return
        impl.static_output(f"-- Tenant {self.name}: schema {self.name}\n")
        quoted = impl.dialect.identifier_preparer.quote_identifier(self.name)
        context.execute(f"SET search_path TO {quoted}")


@dataclass(frozen=True, kw_only=True)
class TenantSettings(Settings):
    """The multitenant template's options (see its alembic.ini)."""

    strategy: str = "database"
    url: URL | None = None
    """``sqlalchemy.url``; for the database strategy with a mark for ``{tenant}``."""
    every: bool = False
    """``-x tenant=all``: every known tenant."""
    requested: tuple[str, ...] = ()
    """The tenants named by ``-x tenant`` / ``config.attributes['tenant']``."""
    create: Create = "known"
    """Missing tenants: created ``always``, only ``known`` ones (listed in
    ``tenants`` or returned by ``tenants_query``), or ``never``."""
    keep_going: bool = False
    compiled: Compile = "auto"
    """Replay a once-rendered script per tenant: ``auto`` where the SQL is
    provably the same for every tenant, ``always``, or ``never``."""
    workers: int = 1
    """Worker processes of a fleet run (``-x workers``, ``fleet_workers``)."""
    tenants: tuple[str, ...] = ()
    tenants_query: str | None = None
    tenants_url: str | None = None
    tenants_pattern: str | None = None

    @classmethod
    def read(cls, reader: OptionReader) -> dict[str, Any]:
        strategy = reader.text("tenant_strategy") or "database"
        if strategy not in STRATEGIES:
            raise CommandError(
                f"invalid tenant_strategy {strategy!r}: expected one of"
                f" {', '.join(STRATEGIES)}"
            )
        every, requested = _requested(reader)
        return {
            **super().read(reader),
            "strategy": strategy,
            "url": _url(reader.config, strategy),
            "every": every,
            "requested": requested,
            "create": reader.flag_or_word(
                "create", ini_key="create_tenants", word="known"
            ),
            "keep_going": reader.flag(
                "continue", ini_key="continue_on_error", default=False
            ),
            "compiled": reader.flag_or_word(
                "compiled", ini_key="compiled_upgrades", word="auto"
            ),
            "workers": _workers(reader),
            "tenants": tuple(
                validate_all(split_list(reader.ini("tenants")), "tenants")
            ),
            "tenants_query": reader.ini("tenants_query"),
            "tenants_url": _tenants_url(reader.ini("tenants_url")),
            "tenants_pattern": reader.ini("tenants_pattern"),
        }

    def tenant(self, name: str) -> Tenant:
        """The :class:`Tenant` called *name* (a validated name)."""
        url = self.url
        if url is None:
            return Tenant(name, self.strategy)
        if self.strategy == "database":
            url = url.set(database=(url.database or "").replace(_MARK, name))
        return Tenant(name, self.strategy, url.render_as_string(hide_password=False))

    def named(self) -> list[str]:
        """The tenants this command was given by name (not ``all``)."""
        if not self.every and not self.requested:
            raise CommandError(f"no tenant given: {HOW_TO_CHOOSE}")
        return list(self.requested)


def _requested(reader: OptionReader) -> tuple[bool, tuple[str, ...]]:
    raw: object = reader.x_only("tenant")
    source = "-x tenant"
    if raw is None:
        raw = reader.config.attributes.get("tenant")
        source = "config.attributes['tenant']"
    if raw is None:
        return False, ()
    if isinstance(raw, str):
        names: list[object] = [part.strip(" ") for part in raw.split(",")]
    elif isinstance(raw, Sequence):
        names = list(raw)
    else:
        raise CommandError(
            f"invalid {source}: expected a name, a list of names or 'all', got {raw!r}"
        )
    if names == [ALL]:
        return True, ()
    return False, tuple(validate_all(names, source))


def _workers(reader: OptionReader) -> int:
    value = reader.text("workers", ini_key="fleet_workers")
    if value is None:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= 256:
        raise CommandError(
            f"invalid value {value!r} for workers / fleet_workers: expected a whole"
            " number of worker processes from 1 to 256"
        )
    return int(value)


def _raw_url(config: Config) -> str:
    """``sqlalchemy.url`` with ``{tenant}`` marked before ``%(...)s`` expands."""
    parser = config.file_config
    section = config.config_ini_section
    if not parser.has_option(section, "sqlalchemy.url"):
        return ""
    raw = parser.get(section, "sqlalchemy.url", raw=True).replace("{tenant}", _MARK)
    lookup = ChainMap(dict(parser.items(section, raw=True)))
    return (
        BasicInterpolation()
        .before_get(parser, section, "sqlalchemy.url", raw, lookup)
        .strip()
    )


def _url(config: Config, strategy: str) -> URL | None:
    raw = _raw_url(config)
    if not raw:
        return None  # only a caller-shared connection can serve
    try:
        url = make_url(raw)
    except Exception as exc:
        raise CommandError(
            f"invalid sqlalchemy.url {display_url(raw)}: {exc}"
        ) from None
    shown = display_url(url).replace(_MARK, "{tenant}")
    marked = _MARK in (url.database or "")
    elsewhere = (url.username, url.password, url.host, *url.query.values())
    if any(_MARK in str(part) for part in elsewhere if part is not None):
        raise CommandError(
            f"sqlalchemy.url {shown}: {{tenant}} may stand only in the database"
            " part (the database name, or the SQLite file path)"
        )
    if strategy == "database" and not marked:
        raise CommandError(
            f"tenant_strategy = database needs sqlalchemy.url with {{tenant}} in"
            f" its database part, got {shown}"
        )
    if strategy == "schema" and (marked or url.get_backend_name() != "postgresql"):
        raise CommandError(
            "tenant_strategy = schema needs one PostgreSQL sqlalchemy.url"
            f" (no {{tenant}}), got {shown}"
        )
    return url


def _tenants_url(value: str | None) -> str | None:
    if value is not None:
        try:
            make_url(value)
        except Exception as exc:
            raise CommandError(
                f"invalid tenants_url {display_url(value)}: {exc}"
            ) from None
    return value
