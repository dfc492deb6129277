"""The multitenant template's options, read once, and the tenants they describe.

``schema`` strategy: ``sqlalchemy.url`` is one PostgreSQL database; each
tenant is a schema in it.  ``database`` strategy: ``sqlalchemy.url`` is a
template whose database part holds ``{tenant}``
(``sqlite:///%(here)s/tenants/{tenant}.db``, ``postgresql+asyncpg://h/app_{tenant}``).
``{tenant}`` is read from the ini text as written, so a ``{tenant}`` that
``%(here)s`` expands to (a project in ``/srv/{tenant}/``) is left alone.
"""

from __future__ import annotations

import configparser
import os
import re
from collections import ChainMap
from collections.abc import Mapping, Sequence
from configparser import BasicInterpolation
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from alembic import context
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import URL, Connection, make_url

from ..alembic_internals import VERSION_TABLE, running_command, static_output
from ..configuration.filters import IncludeName
from ..configuration.option_table import option
from ..configuration.options import InvalidOption, InvalidOptionType
from ..configuration.settings import OptionReader, Settings, configure_arguments
from ..database.connections import display_url, expand_url, first_line
from ..logs import logger_for
from .compiled import Compile
from .names import (
    ALL,
    FAILED,
    SHARED,
    is_pattern,
    split_list,
    validate_all,
    validate_selector,
    validate_shared,
)
from .progress import PROGRESS_MODES, ProgressMode
from .report_file import check_writable
from .rollout import parse_rollout

__all__ = ["STRATEGIES", "Tenant", "TenantSettings"]

STRATEGIES = ("schema", "database")
log = logger_for(__name__)
RECORD_TABLE = "alembic_recipes_fleet_run"
CREATING_TABLE = "alembic_recipes_creating"
"""In a tenant database this package created, until its first migration has
committed (:mod:`.databases`)."""
"""The fleet's run record (:mod:`.record`); autogenerate leaves it alone."""
HOW_TO_CHOOSE = (
    "pass -x tenant=NAME[,NAME...] or -x tenant=all (the tenants known from"
    " tenants / tenants_query / tenants_pattern in [alembic]),"
    " or set config.attributes['tenant']; -x tenant=shared for the shared scope"
    " (shared_scope)"
)
_MARK = "alembicrecipestenantmark"  # stands for {tenant} while the URL is parsed
Create = Literal["always", "known", "never"]
_SHARED_ALWAYS = ("upgrade", "revision", "check")


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
        return display_url(self.url).replace(_MARK, "{tenant}")


@dataclass(frozen=True, kw_only=True)
class TenantSettings(Settings):
    """The multitenant template's options (see its alembic.ini)."""

    TEMPLATE: ClassVar[str] = "multitenant"

    strategy: str = "database"
    url: URL | None = None
    """``sqlalchemy.url``; for the database strategy with a mark for ``{tenant}``."""
    every: bool = False
    """``-x tenant=all``: every known tenant."""
    requested: tuple[str, ...] = ()
    """The tenants named by ``-x tenant`` / ``config.attributes['tenant']``."""
    selectors: tuple[str, ...] = ()
    """``-x tenant``'s items in order: names, patterns (``t0*``), ``all``."""
    excluded: tuple[str, ...] = ()
    """``-x tenant``'s ``!name`` / ``!pattern`` items (without the ``!``)."""
    shard: tuple[int, int] | None = None
    """``-x shard=K/N``: this run's slice of the selection."""
    claim: bool = False
    """``-x shard=claim``: runners share the run, claiming its tenants."""
    run_id: str | None = None
    """``-x run=ID``: the run the claiming runners share."""
    claim_lease: float = 30.0
    """Seconds a runner's claim on a tenant lasts unless renewed."""
    report: str | None = None
    """``-x report=PATH``: the run's record as JSON Lines."""
    plan: bool = False
    """``-x plan=true``: say what would run for each tenant; change nothing."""
    rollout: tuple[str, ...] = ()
    """``rollout``: the waves of a fleet run (:mod:`.rollout`); empty: one."""
    max_failures: int = 0
    """Failed tenants a wave may have before the later waves are not run."""
    progress: ProgressMode = "auto"
    """How a fleet run shows how far it is (:mod:`.progress`)."""
    progress_interval: float = 30.0
    """Seconds between a fleet's ``Progress:`` lines (0: none)."""
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
    extensions: str | None = None
    """``extensions_schema``: where tenant migrations' extensions go (schema
    strategy; default: the shared scope's schema, else ``public``)."""
    shared: str | None = None
    """``shared_scope``: the shared schema (schema strategy) or the name put
    in the ``{tenant}`` URL for the shared database; None: no shared scope."""
    with_shared: bool = False
    """``-x tenant=shared`` (alone or with tenants) was given."""
    servers: tuple[Server, ...] = ()
    """``servers``: those this command runs on (all, or ``-x server=``);
    empty: one server, ``sqlalchemy.url``."""
    configured_servers: str = ""
    """Every name of ``servers`` (also those ``-x server=`` leaves out)."""
    server_workers: int = 0
    """Workers on one server at a time (0: no cap but ``fleet_workers``)."""
    server: str | None = None
    """The settings of one of the :attr:`servers` (:meth:`on_server`)."""
    section: str | None = None
    """Where this server's ``sqlalchemy.*`` options are (None: ``[alembic]``)."""

    @classmethod
    def read(cls, reader: OptionReader) -> dict[str, Any]:
        strategy = reader.text("tenant_strategy") or "database"
        if strategy not in STRATEGIES:
            raise InvalidOption(
                f"invalid tenant_strategy {strategy!r}: expected one of"
                f" {', '.join(STRATEGIES)}"
            )
        base = super().read(reader)
        # alembic-gauntlet's target_schema: that schema is the one tenant; on
        # a caller's connection it is a schema there, whatever the strategy
        target = base.pop("target_schema")
        selection = _requested(reader)
        from_target = target is not None and not selection
        on_callers = (
            from_target and reader.config.attributes.get("connection") is not None
        )
        if from_target:
            name = validate_selector(target, source="target_schema")
            selection = {"every": False, "requested": (name,), "selectors": (name,)}
            strategy = "schema" if on_callers else strategy
        if not selection and running_command() == "current":
            log.info(
                "current: no -x tenant given, so every known tenant (-x tenant=all)"
            )
            selection = {"every": True, "selectors": (ALL,)}
        requested = selection.get("requested", ())
        raw_shared = reader.ini("shared_scope")
        shared = validate_shared(raw_shared.strip()) if raw_shared else None
        with_shared = bool(shared) and SHARED in requested
        if with_shared:
            requested = tuple(name for name in requested if name != SHARED)
        tenants = tuple(validate_all(split_list(reader.ini("tenants")), "tenants"))
        if not shared and SHARED in requested and SHARED not in tenants:
            raise InvalidOption(
                f"-x tenant={SHARED} names the shared scope, and this environment"
                " has none: set shared_scope in [alembic] (e.g. shared_scope ="
                f" public), or list a tenant called {SHARED!r} in tenants"
            )
        if shared and shared in (*requested, *tenants):
            raise CommandError(
                f"{shared!r} is the shared scope (shared_scope), not a tenant: use"
                f" -x tenant={SHARED} for it"
            )
        servers = _servers(reader, strategy)
        if servers and shared:
            raise CommandError(
                "shared_scope is not supported with servers: each server would need"
                " its own shared scope; migrate it in an environment of its own"
            )
        return {
            **base,
            "strategy": strategy,
            "url": None if on_callers or servers else _url(reader.config, strategy),
            "servers": servers,
            "configured_servers": reader.ini("servers") or "",
            "server_workers": reader.whole("server_workers"),
            **selection,
            "requested": requested,
            **_sharing(reader),
            "report": _report(reader),
            "plan": reader.flag("plan"),
            "rollout": _rollout(reader),
            "max_failures": reader.whole("max_failures"),
            "progress": _progress(reader),
            "progress_interval": reader.duration("progress_interval"),
            "create": reader.flag_or_word("create_tenants"),
            "keep_going": reader.flag("continue_on_error"),
            "compiled": reader.flag_or_word("compiled_upgrades"),
            "workers": reader.whole("fleet_workers"),
            "tenants": tenants,
            "shared": shared,
            "extensions": _extensions(reader) or shared or "public",
            "with_shared": with_shared,
            "tenants_query": reader.ini("tenants_query"),
            "tenants_url": _tenants_url(reader.ini("tenants_url")),
            "tenants_pattern": reader.ini("tenants_pattern"),
        }

    def tenant(self, name: str) -> Tenant:
        """The :class:`Tenant` called *name* (a validated name, or the shared
        scope's)."""
        url = self.url
        shared = name == self.shared
        runs = 2 if self.tenants_run and self.shared_runs else 1
        shared_schema = (
            self.shared if self.strategy == "schema" and not shared else None
        )
        if url is not None and self.strategy == "database":
            url = url.set(database=(url.database or "").replace(_MARK, name))
        shown = url.render_as_string(hide_password=False) if url is not None else ""
        extensions = self.extensions if self.strategy == "schema" else None
        return Tenant(
            name,
            self.strategy,
            shown,
            shared,
            shared_schema,
            runs,
            server=self.server,
            extensions_schema=extensions,
        )

    def on_server(self, name: str, catalog: Sequence[str] = ()) -> TenantSettings:
        """These settings for server *name* of :attr:`servers`: its URL, its
        ``tenants`` then *catalog* (those ``tenants_query`` on ``tenants_url``
        placed there), its ``tenants_pattern``; ``tenants_query`` only where
        it runs on the server itself (no ``tenants_url``)."""
        server = next(s for s in self.servers if s.name == name)
        return replace(
            self,
            url=server.url,
            server=name,
            section=server.section,
            servers=(),
            tenants=tuple(dict.fromkeys((*server.tenants, *catalog))),
            tenants_pattern=server.tenants_pattern or self.tenants_pattern,
            tenants_query=None if self.tenants_url else self.tenants_query,
        )

    def named(self) -> list[str]:
        """The tenants this command was given by name (not ``all``)."""
        if not (self.every or self.requested or self.needs_known or self.resumes):
            raise CommandError(f"no tenant given: {HOW_TO_CHOOSE}")
        return list(self.requested)

    @property
    def resumes(self) -> bool:
        """``-x tenant=failed``: the selection reads the run record."""
        return FAILED in self.selectors

    @property
    def needs_known(self) -> bool:
        """The selection reads the known tenants (``all``, a pattern)."""
        return self.every or any(is_pattern(i) for i in self.selectors)

    @property
    def tenants_run(self) -> bool:
        """Whether this command migrates tenants (not only the shared scope)."""
        return self.every or bool(self.requested) or not self.with_shared

    @property
    def shared_runs(self) -> bool:
        """Whether this command migrates the shared scope: with ``-x
        tenant=all`` or ``shared``, and whenever tenants are upgraded or
        compared (autogenerate), since tenant tables may use shared ones."""
        if self.shared is None:
            return False
        return self.every or self.with_shared or self.command in _SHARED_ALWAYS


def _requested(reader: OptionReader) -> dict[str, Any]:
    """``every``, ``requested``, ``selectors`` and ``excluded`` of ``-x tenant``."""
    raw: object = reader.x_only("tenant")
    source = "-x tenant"
    if raw is None:
        raw = reader.config.attributes.get("tenant")
        source = "config.attributes['tenant']"
    if raw is None:
        return {}
    if isinstance(raw, str):
        items: list[object] = list(raw.split(","))  # exact: " all" is no tenant
    elif isinstance(raw, Sequence):
        items = list(raw)
    else:
        raise InvalidOptionType(
            f"invalid {source}: expected a name, a list of names or 'all', got {raw!r}"
        )
    checked = list(dict.fromkeys(validate_selector(i, source=source) for i in items))
    positive = tuple(i for i in checked if not i.startswith("!"))
    excluded = tuple(i[1:] for i in checked if i.startswith("!"))
    return {
        "every": positive in ((ALL,), ()),
        "requested": tuple(
            i for i in positive if i not in (ALL, FAILED) and not is_pattern(i)
        ),
        "selectors": positive or (ALL,),
        "excluded": excluded,
    }


def _extensions(reader: OptionReader) -> str | None:
    """``extensions_schema``: a schema name PostgreSQL takes, or None."""
    name = reader.ini("extensions_schema")
    if name is not None and (len(name) > 63 or "\x00" in name):
        accepted = option("extensions_schema").accepted
        raise InvalidOption.expected(name, "extensions_schema", accepted)
    return name


def _report(reader: OptionReader) -> str | None:
    """``-x report=PATH``: a file that can be written, checked now."""
    path = reader.text("report")
    return None if path is None else check_writable(path, "-x report")


def _rollout(reader: OptionReader) -> tuple[str, ...]:
    value, source = reader.value("rollout")  # the ini writes 10%% (configparser)
    if value is None:
        return ()
    if isinstance(value, bool):
        raise InvalidOption.expected(value, source, option("rollout").accepted)
    return parse_rollout(value, source)


def _progress(reader: OptionReader) -> ProgressMode:
    value, source = reader.value("progress")
    if value is None:
        return "auto"
    for mode in PROGRESS_MODES:
        if value == mode:
            return mode
    raise InvalidOption.expected(value, source, option("progress").accepted)


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def _sharing(reader: OptionReader) -> dict[str, Any]:
    """``shard`` (``claim``, ``K/N``, ``auto``), ``run`` and ``claim_lease``."""
    value = reader.text("shard")
    lease = reader.duration("claim_lease")
    run_id = reader.text("run")
    if value != "claim":
        if run_id is not None:
            raise InvalidOption(
                f"-x run={run_id} names a run that claiming runners share: it needs"
                " -x shard=claim (or shard = claim in [alembic])"
            )
        return {"shard": _shard(value), "claim_lease": lease}
    if run_id is None:
        raise InvalidOption(
            "-x shard=claim needs the run id its runners share: -x run=ID (e.g. the"
            " Kubernetes Job's name, -x run=$(JOB_NAME)); a new deploy, a new id"
        )
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidOption.expected(run_id, "-x run", option("run").accepted)
    return {"claim": True, "run_id": run_id, "claim_lease": lease}


def _shard(value: str | None) -> tuple[int, int] | None:
    """``-x shard=K/N`` (K from 0 to N-1), or ``auto``: a Kubernetes Indexed
    Job's ``JOB_COMPLETION_INDEX`` of ``JOB_COMPLETIONS``."""
    if value is None:
        return None
    accepted = option("shard").accepted
    source = "-x shard"
    if value == "auto":
        index = os.environ.get("JOB_COMPLETION_INDEX")
        count = os.environ.get("JOB_COMPLETIONS")
        if index is None or count is None:
            raise InvalidOption(
                "-x shard=auto needs the environment variables JOB_COMPLETION_INDEX"
                " (set by Kubernetes for an Indexed Job's pods) and JOB_COMPLETIONS"
                " (set it in the Job's manifest to spec.completions); got"
                f" JOB_COMPLETION_INDEX={index!r}, JOB_COMPLETIONS={count!r}"
            )
        value, source = (
            f"{index}/{count}",
            "-x shard=auto (JOB_COMPLETION_INDEX/JOB_COMPLETIONS)",
        )
    k, slash, n = value.partition("/")
    digits = f"{k}{n}".isascii() and k.isdigit() and n.isdigit()
    if not (slash and digits and 0 <= int(k) < int(n) <= 100_000):
        raise InvalidOption.expected(value, source, accepted)
    return int(k), int(n)


_SERVER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")


def _servers(reader: OptionReader, strategy: str) -> tuple[Server, ...]:
    """``servers`` and their sections; only those of ``-x server=`` if given."""
    raw = reader.ini("servers")
    wanted = reader.x_only("server")
    names = split_list(raw)
    if not names:
        if wanted is not None:
            raise InvalidOption(
                f"-x server={wanted}: no servers are configured (servers = ... in"
                " [alembic])"
            )
        return ()
    for name in names:
        if not _SERVER_NAME.fullmatch(name):
            raise InvalidOption.expected(name, "servers", option("servers").accepted)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidOption(f"servers lists {', '.join(duplicates)} more than once")
    if wanted is not None:
        chosen = split_list(wanted)
        unknown = [name for name in chosen if name not in names]
        if unknown or not chosen:
            raise InvalidOption(
                f"invalid -x server={wanted}: expected names listed in servers"
                f" ({', '.join(names)})"
            )
        names = [name for name in names if name in chosen]
    return tuple(_server(reader, name, strategy) for name in names)


def _server(reader: OptionReader, name: str, strategy: str) -> Server:
    config = reader.config
    scoped = f"{config.config_ini_section}.{name}"
    section = scoped if config.file_config.has_section(scoped) else name
    if not config.file_config.has_section(section):
        raise CommandError(
            f"server {name!r} has no [{name}] section: add one with its"
            " sqlalchemy.url to the ini file"
        )
    url = _url(config, strategy, section=section)
    if url is None:
        raise CommandError(f"server {name!r}: [{section}] has no sqlalchemy.url")
    items = dict(config.file_config.items(section))
    source = f"tenants in [{section}]"
    tenants = tuple(validate_all(split_list(items.get("tenants")), source))
    pattern = (items.get("tenants_pattern") or "").strip() or None
    return Server(name, url, tenants, pattern, section)


def _raw_url(config: Config, section: str | None = None) -> str:
    """``sqlalchemy.url`` with ``{tenant}`` marked -- where written, and in
    the values of ``${NAME}`` (a URL from a Secret) -- before ``%(...)s``
    expands: ``{tenant}`` in the project's own path is left alone."""
    parser = config.file_config
    section = section or config.config_ini_section
    if not parser.has_option(section, "sqlalchemy.url"):
        return ""
    raw = parser.get(section, "sqlalchemy.url", raw=True).replace("{tenant}", _MARK)
    raw = expand_url(
        raw,
        f"[{section}]",
        each=lambda value: value.replace("{tenant}", _MARK).replace("%", "%%"),
    )
    lookup = ChainMap(dict(parser.items(section, raw=True)))
    try:
        expanded = BasicInterpolation().before_get(
            parser, section, "sqlalchemy.url", raw, lookup
        )
    except configparser.Error as exc:
        raise InvalidOption(
            f"invalid sqlalchemy.url in [{section}]: {first_line(exc)}"
            " (write a literal % as %%)"
        ) from None
    return expanded.strip()


def _url(config: Config, strategy: str, section: str | None = None) -> URL | None:
    raw = _raw_url(config, section)
    if not raw:
        return None  # only a caller-shared connection can serve
    try:
        url = make_url(raw)
    except Exception as exc:
        shown = display_url(raw)
        where = f" in [{section}]" if section else ""
        raise InvalidOption(f"invalid sqlalchemy.url{where} {shown}: {exc}") from None
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
        value = expand_url(value, "tenants_url")
        try:
            make_url(value)
        except Exception as exc:
            raise InvalidOption(
                f"invalid tenants_url {display_url(value)}: {exc}"
            ) from None
    return value
