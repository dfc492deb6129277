"""Which tenants one command runs on, and which of the missing ones it may create."""

from __future__ import annotations

from collections.abc import Sequence

from alembic.util import CommandError
from sqlalchemy.engine import Connection

from .config import TenantSettings
from .discovery import known_tenants, listed_tenants

__all__ = ["AUTOGENERATE_COMMANDS", "Selection"]

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

    def names(self, conn: Connection | None) -> list[str]:
        """The tenants of this run, in order (*conn*: the shared database,
        for ``tenants_query`` and ``tenants_pattern`` of the schema strategy)."""
        settings = self.settings
        if self.shared:
            return [str(settings.shared)]
        if settings.every:
            names = known_tenants(settings, conn)
            if not names:
                raise CommandError(
                    "-x tenant=all found no tenants: list them in tenants, or set"
                    " tenants_query or tenants_pattern in [alembic]"
                )
        else:
            names = settings.named()
        if settings.command in AUTOGENERATE_COMMANDS and len(names) != 1:
            raise CommandError(
                "autogenerate compares against one tenant: pass -x tenant=NAME"
                f" (got {len(names)} tenants)"
            )
        return names

    def load_listed(self, conn: Connection | None, missing: Sequence[str]) -> None:
        """Read which tenants are listed, when *missing* ones may need it (create
        = known).  Call before the tenants' transactions begin."""
        if missing and self.settings.create == "known" and self._listed is None:
            self._listed = frozenset(listed_tenants(self.settings, conn))

    def may_create(self, name: str) -> bool:
        """Whether tenant *name*'s missing schema/database is created now."""
        create = self.settings.create
        if self.settings.command == "current":
            return False  # status never creates anything
        if self.shared:
            return True
        if create == "never":
            return False
        return create == "always" or name in (self._listed or ())

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
