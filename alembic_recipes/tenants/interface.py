"""The one interface of the ways of keeping tenants apart.

:class:`TenantStrategy` is what a fleet, the shared scope and the worker
processes run tenants through: :class:`~.schemas.SchemaTenants`,
:class:`~.databases.DatabaseTenants`, and :class:`~.servers.ServerTenants`
over one of those per server.  :func:`~.strategy.strategy_for` chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol, TypeVar

from .fleet import Fleet, Outcome

__all__ = ["TenantStrategy"]

T = TypeVar("T")


class TenantStrategy(Protocol):
    """What a run needs of a strategy (:class:`~.schemas.SchemaTenants`,
    :class:`~.databases.DatabaseTenants`)."""

    fleet: Fleet

    def on_connection(self, fn: Callable[[], T]) -> T:
        """Call *fn* with whatever the tenants share open (the schema
        strategy's connection to the one database; nothing per database)."""
        ...

    def select(self) -> list[str]:
        """The tenants of this run (inside :meth:`on_connection`)."""
        ...

    def known(self) -> list[str]:
        """The known tenants (``tenants``, ``tenants_query``,
        ``tenants_pattern``; inside :meth:`on_connection`)."""
        ...

    def recorded(self) -> list[str] | None:
        """The tenants the run record has unfinished; None: no run recorded
        (inside :meth:`on_connection`)."""
        ...

    def take(self, names: Sequence[str]) -> None:
        """Run on *names*, selected elsewhere (across servers): read what
        :meth:`select` would have read of them (inside :meth:`on_connection`)."""
        ...

    def at_head(self, name: str) -> bool:
        """Known to be at head already, with nothing to lock or read."""
        ...

    def prepare_workers(self, names: Sequence[str]) -> None:
        """Read now what forked workers must share (before they start)."""
        ...

    def save_record(self, only: Collection[str] | None = None) -> None:
        """Store this run's outcomes -- of the tenants *only*, or all -- in
        the run record (inside :meth:`on_connection`)."""
        ...

    def current(self, name: str) -> list[str] | None:
        """Tenant *name*'s versions (inside :meth:`on_connection`, after
        :meth:`select`); None when its schema or database does not exist."""
        ...

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name* (inside :meth:`on_connection`); what it did."""
        ...
