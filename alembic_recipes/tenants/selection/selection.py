"""Which tenants one command runs on, and which of the missing ones it may create."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Sequence

from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ...logs import logger_for
from ..model.names import ALL, FAILED, is_pattern
from ..model.settings import TenantSettings
from .discovery import known_tenants, listed_tenants

__all__ = ["AUTOGENERATE_COMMANDS", "Selection", "in_shard", "resolve"]

log = logger_for(__name__)

AUTOGENERATE_COMMANDS = ("revision", "check")
"""env.py compares, nothing runs; the revision file is the output."""


class Selection:
    """The tenants of one run (validated before any SQL is sent for them)
    and the create policy for those that do not exist yet."""

    def __init__(self, settings: TenantSettings, *, shared: bool = False) -> None:
        self.settings = settings
        self.shared = shared
        """The run migrates the shared scope (``shared_scope``) alone."""
        self._listed: frozenset[str] | None = None
        self._warned: set[str] = set()
        self._on_server: Callable[[str], Selection] | None = None

    def across_servers(self, of: Callable[[str], Selection]) -> None:
        """With ``servers``: whether a tenant may be created is for *of(name)*,
        its server's selection, to say (its lists, its catalog rows)."""
        self._on_server = of

    def names(
        self,
        conn: Connection | None,
        recorded: Callable[..., list[str] | None] = lambda check=True: None,
        known: Callable[[], list[str]] | None = None,
    ) -> list[str]:
        """The tenants of this run, in order (*conn*: the shared database,
        for ``tenants_query`` and ``tenants_pattern`` of the schema strategy;
        *recorded*: what the run record leaves to resume; *known*: the
        known tenants, when they are read elsewhere -- on several servers)."""
        settings = self.settings
        if self.shared:
            return [str(settings.shared)]
        selectors: Sequence[str] = settings.selectors
        if settings.resumes:
            resumed = _resumed(selectors, recorded())
            if resumed is None:
                return []
            selectors = resumed
        if settings.needs_known:
            found = known() if known is not None else known_tenants(settings, conn)
            found = _template_first(settings, found)
            names = resolve(selectors, settings.excluded, _some(found))
        else:
            named = selectors if settings.resumes else settings.named()
            names = resolve(named, settings.excluded, [])
        if settings.shard is not None:
            k, n = settings.shard
            names = [name for name in names if in_shard(name, k, n)]
        if settings.command == "revision" and len(names) != 1:
            raise CommandError(
                "autogenerate compares against one tenant: pass -x tenant=NAME"
                f" (got {len(names)} tenants; -x tenant=all check compares them all)"
            )
        return names

    def load_listed(self, conn: Connection | None, missing: Sequence[str]) -> None:
        """Read which tenants are listed, when *missing* ones may need it (create
        = known).  Call before the tenants' transactions begin."""
        creates = self.settings.create in ("known", "always") and not self.shared
        if missing and creates and self._listed is None:
            self._listed = frozenset(listed_tenants(self.settings, conn))

    def forget_listed(self) -> None:
        """Read which tenants are listed again at the next
        :meth:`load_listed` (tenants joined the catalog meanwhile)."""
        self._listed = None

    def may_create(self, name: str) -> bool:
        """Whether tenant *name*'s missing schema/database is created now."""
        if self._on_server is not None:
            return self._on_server(name).may_create(name)
        create = self.settings.create
        if self.settings.command == "current":
            return False  # status never creates anything
        provisioning = self.settings.provisioning
        if self.shared or provisioning.new:
            return True
        if provisioning.snapshot and name == provisioning.template:
            return True
        if create == "never":
            return False
        listed = name in (self._listed or ())
        if create == "always" and not listed and self._listed is not None:
            self._outside_the_list(name)
        return create == "always" or listed

    def _outside_the_list(self, name: str) -> None:
        """Warn (once) that tenant *name*, created now, is not one ``-x
        tenant=all`` finds: name the line that would make it one."""
        settings = self.settings
        pattern = settings.tenants_pattern
        if name in self._warned or (pattern and fnmatch.fnmatchcase(name, pattern)):
            return
        self._warned.add(name)
        if settings.tenants_query:
            fix = "add it to the catalog tenants_query reads"
        else:
            fix = f"add it to tenants: tenants = {', '.join((*settings.tenants, name))}"
        log.warning(
            "tenant %r is created but is not one of this fleet's tenants:"
            " -x tenant=all will not migrate it; %s",
            name,
            fix,
        )

    def missing(self, name: str) -> Exception:
        """The error for tenant *name*, missing and not to be created."""
        what = "schema" if self.settings.strategy == "schema" else "database"
        why = (
            f" and {name!r} is not listed in tenants / tenants_query"
            if self.settings.create == "known"
            else " and create_tenants = false"
        )
        return CommandError(
            f"tenant {name!r}: {what} does not exist{why} (create it with"
            " -x create=true or create_tenants = true)"
        )


def _template_first(settings: TenantSettings, names: list[str]) -> list[str]:
    """The known tenants *names*, with ``provision = snapshot``'s template
    first: an upgrade migrates it before the others (creating it if missing)."""
    provisioning = settings.provisioning
    if not provisioning.snapshot or settings.command != "upgrade":
        return names
    template = provisioning.template
    return [template, *(name for name in names if name != template)]


def _some(known: list[str]) -> list[str]:
    """The *known* tenants of ``-x tenant=all`` (or a pattern): not none."""
    if not known:
        raise CommandError(
            "-x tenant=all found no tenants: list them in tenants, or set"
            " tenants_query or tenants_pattern in [alembic]"
        )
    return known


def _resumed(selectors: Sequence[str], failed: list[str] | None) -> list[str] | None:
    """*selectors* with ``failed`` replaced by the tenants the run record
    leaves to resume (*failed*); None: nothing to resume, and nothing else
    selected."""
    if failed is None:
        raise CommandError(
            "-x tenant=failed: no fleet run of this environment is recorded"
            " yet (the record is written after each fleet upgrade,"
            " downgrade or stamp)"
        )
    if not failed and list(selectors) == [FAILED]:
        log.info(
            "-x tenant=failed: every tenant of the run record is finished"
            " and at the target its row records"
        )
        return None
    return [n for s in selectors for n in (failed if s == FAILED else [s])]


def resolve(
    selectors: Sequence[str], excluded: Sequence[str], known: Sequence[str]
) -> list[str]:
    """The tenants *selectors* choose (names as given; ``all`` and patterns
    over *known*, in its order), minus *excluded* names and patterns.  A
    pattern or exclusion matching nothing is an error naming it."""
    chosen: dict[str, None] = {}
    for item in selectors:
        chosen.update(dict.fromkeys(_chosen_by(item, known)))
    for item in excluded:
        matched = [name for name in chosen if fnmatch.fnmatchcase(name, item)]
        if not matched:
            raise CommandError(
                f"-x tenant: '!{item}' excludes none of the {len(chosen)} selected"
                " tenants"
            )
        for name in matched:
            del chosen[name]
    if not chosen:
        raise CommandError("-x tenant: the exclusions leave no tenant to run")
    return list(chosen)


def _chosen_by(item: str, known: Sequence[str]) -> list[str]:
    """The tenants selector *item* chooses: a name as given; ``all`` and a
    pattern over *known*."""
    if item == ALL:
        return list(known)
    if not is_pattern(item):
        return [item]
    matched = [name for name in known if fnmatch.fnmatchcase(name, item)]
    if not matched:
        raise CommandError(
            f"-x tenant: the pattern {item!r} matches none of the"
            f" {len(known)} known tenants"
        )
    return matched


def in_shard(name: str, k: int, n: int) -> bool:
    """Whether tenant *name* is in shard *k* of *n* (``-x shard=K/N``): a hash
    of the name alone, so the *n* shards are disjoint, cover every tenant, and
    adding a tenant moves no other one."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n == k
