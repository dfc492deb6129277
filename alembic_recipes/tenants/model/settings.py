"""The multitenant template's options, read once (:class:`TenantSettings`).

``schema`` strategy: ``sqlalchemy.url`` is one PostgreSQL database; each
tenant is a schema in it.  ``database`` strategy: ``sqlalchemy.url`` is a
template whose database part holds ``{tenant}``
(``sqlite:///%(here)s/tenants/{tenant}.db``, ``postgresql+asyncpg://h/app_{tenant}``).
``{tenant}`` is read from the ini text as written, so a ``{tenant}`` that
``%(here)s`` expands to (a project in ``/srv/{tenant}/``) is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from alembic.util import CommandError
from sqlalchemy.engine import URL

from ...alembic_internals import running_command
from ...configuration.options import InvalidOption
from ...configuration.reader import OptionReader
from ...configuration.settings import Settings
from ...logs import logger_for
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
from .provisioning import Provisioning, read_provisioning
from .reading import (
    ProgressMode,
    read_extensions,
    read_progress,
    read_report,
    read_requested,
    read_rollout,
    read_servers,
    read_sharing,
    read_tenants_url,
    read_url,
)
from .tenant import MARK, Server, Tenant

__all__ = ["HOW_TO_CHOOSE", "STRATEGIES", "Compile", "Create", "TenantSettings"]

STRATEGIES = ("schema", "database")
log = logger_for(__name__)
HOW_TO_CHOOSE = (
    "pass -x tenant=NAME[,NAME...] or -x tenant=all (the tenants known from"
    " tenants / tenants_query / tenants_pattern in [alembic]),"
    " or set config.attributes['tenant']; -x tenant=shared for the shared scope"
    " (shared_scope)"
)
Create = Literal["always", "known", "never"]
Compile = Literal["auto", "always", "never"]
"""``compiled_upgrades``: replay once-rendered scripts (:mod:`.compiled`)."""
_SHARED_ALWAYS = ("upgrade", "revision", "check")


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
    provisioning: Provisioning = field(default_factory=Provisioning)
    """How missing tenants are made (``provision``; :mod:`.provisioning`)."""
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
        selection, strategy, on_callers = _selection(
            reader, base.pop("target_schema"), strategy
        )
        scope = _shared_scope(reader, selection.pop("requested", ()))
        servers = read_servers(reader, strategy)
        if servers and scope["shared"]:
            raise CommandError(
                "shared_scope is not supported with servers: each server would need"
                " its own shared scope; migrate it in an environment of its own"
            )
        return {
            **base,
            "strategy": strategy,
            "url": None if on_callers or servers else read_url(reader.config, strategy),
            "servers": servers,
            "configured_servers": reader.ini("servers") or "",
            "server_workers": reader.whole("server_workers"),
            **selection,
            **scope,
            **read_sharing(reader),
            "report": read_report(reader),
            "plan": reader.flag("plan"),
            "rollout": read_rollout(reader),
            "max_failures": reader.whole("max_failures"),
            "progress": read_progress(reader),
            "progress_interval": reader.duration("progress_interval"),
            "create": reader.flag_or_word("create_tenants"),
            "provisioning": read_provisioning(
                reader, schemas=strategy == "schema" and not servers
            ),
            "keep_going": reader.flag("continue_on_error"),
            "compiled": reader.flag_or_word("compiled_upgrades"),
            "workers": reader.whole("fleet_workers"),
            "extensions": read_extensions(reader) or scope["shared"] or "public",
            "tenants_query": reader.ini("tenants_query"),
            "tenants_url": read_tenants_url(reader.ini("tenants_url")),
            "tenants_pattern": reader.ini("tenants_pattern"),
        }

    def section_options(self) -> dict[str, str]:
        """The ini options of this server's section (``servers``), else of
        ``[alembic]``: ``sqlalchemy.url`` and the engine's options."""
        config = self.config
        return dict(config.get_section(self.section or config.config_ini_section, {}))

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
            url = url.set(database=(url.database or "").replace(MARK, name))
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


def _selection(
    reader: OptionReader, target: str | None, strategy: str
) -> tuple[dict[str, Any], str, bool]:
    """``-x tenant`` (:func:`~.reading.read_requested`), else alembic-gauntlet's
    ``target_schema`` as the one tenant (on a caller's connection a schema
    there, whatever the strategy), else for ``current`` every tenant; the
    strategy, and whether the run is on the caller's connection."""
    selection = read_requested(reader)
    from_target = target is not None and not selection
    on_callers = from_target and reader.config.attributes.get("connection") is not None
    if from_target:
        name = validate_selector(target, source="target_schema")
        selection = {"every": False, "requested": (name,), "selectors": (name,)}
        strategy = "schema" if on_callers else strategy
    if not selection and running_command() == "current":
        log.info("current: no -x tenant given, so every known tenant (-x tenant=all)")
        selection = {"every": True, "selectors": (ALL,)}
    return selection, strategy, on_callers


def _shared_scope(reader: OptionReader, requested: tuple[str, ...]) -> dict[str, Any]:
    """``shared_scope``, ``tenants``, and the tenants *requested* but for
    ``shared`` (``with_shared``): the shared scope is never a tenant."""
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
    return {
        "shared": shared,
        "with_shared": with_shared,
        "requested": requested,
        "tenants": tenants,
    }
