"""The one interface of the ways of keeping tenants apart.

:class:`TenantStrategy` is what a run, the shared scope and the worker
processes run tenants through: :class:`~.schemas.SchemaTenants`,
:class:`~.databases.DatabaseTenants`, and :class:`~.servers.ServerTenants`
over one of those per server.  :func:`~.strategy.strategy_for` chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection

from ...logs import logger_for
from ..records.claim_table import last_run_summary
from ..records.outcomes import Outcome
from ..records.record import Row
from ..records.resume import shard_gaps, to_resume
from .run import Run

__all__ = ["TenantStrategy", "recorded"]

T = TypeVar("T")
log = logger_for(__name__)


class TenantStrategy(Protocol):
    """What a run needs of a strategy (:class:`~.schemas.SchemaTenants`,
    :class:`~.databases.DatabaseTenants`)."""

    run: Run

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

    def record_rows(self) -> list[Row] | None:
        """The rows of the run record; None: no run recorded (inside
        :meth:`on_connection`)."""
        ...

    def read_record(self, fn: Callable[[Connection, str | None], T]) -> T | None:
        """``fn(connection, schema)`` reading the run record's database (None:
        none to read; inside :meth:`on_connection`)."""
        ...

    def versions_of(self, names: list[str]) -> dict[str, list[str] | None]:
        """The versions of *names*, read now (None: no such schema or
        database; inside :meth:`on_connection`)."""
        ...

    def take(self, names: Sequence[str]) -> None:
        """Run on *names*, selected elsewhere (across servers): read what
        :meth:`select` would have read of them (inside :meth:`on_connection`)."""
        ...

    def at_head(self, name: str) -> bool | None:
        """Known to be at head already, with nothing to lock or read (None:
        not known before the tenant's own connection reads it)."""
        ...

    def prepare_workers(self, names: Sequence[str]) -> None:
        """Read now what forked workers must share (before they start)."""
        ...

    def verify(self, name: str) -> tuple[list[str] | None, list[str] | None]:
        """Tenant *name*'s versions when its run started (None: not known)
        and now, read on a connection of their own (after a stop; None: its
        schema or database does not exist)."""
        ...

    def current(self, name: str) -> list[str] | None:
        """Tenant *name*'s versions (inside :meth:`on_connection`, after
        :meth:`select`); None when its schema or database does not exist."""
        ...

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name* (inside :meth:`on_connection`); what it did."""
        ...


def recorded(strategy: TenantStrategy, check: bool = True) -> list[str] | None:
    """What ``-x tenant=failed`` selects from *strategy*'s run record: its
    unfinished tenants and (*check*) those whose version is not the target
    their row records (:func:`~.journal.to_resume`); None: no run recorded."""
    rows = strategy.record_rows()
    if rows is None:
        return None
    gaps = shard_gaps(rows, strategy.known()) if any(r.shard for r in rows) else []
    if not check:  # status: and the last shared run's, over every runner
        summary = strategy.read_record(last_run_summary)
        if summary:
            log.info("%s", summary)
        return sorted({*(row.tenant for row in rows if row.unfinished), *gaps})
    return sorted({*to_resume(rows, strategy.versions_of), *gaps})
