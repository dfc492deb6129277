"""Tenants on several servers: ``servers = eu1, us1`` in ``[alembic]``.

Each server has an ini section (``[eu1]``) with its ``sqlalchemy.url`` and,
optionally, its own ``tenants`` / ``tenants_pattern``; a ``tenants_query``
on ``tenants_url`` (a catalog) may place tenants with a second column, the
server's name -- never its URL: passwords stay in the ini.

:class:`ServerTenants` is one :class:`~.strategy.TenantStrategy` over one
strategy per server, each with its own :class:`~.run.Run` (the server's
settings) sharing the run's one :class:`~.report.Report`.  The tenants are
selected once across the servers (a tenant lives on one server), then each
server's strategy reads and runs its own.  A server that cannot be reached --
at the start, or once a tenant's failure finds it gone -- fails each of its
tenants with one line naming it (password masked); the others go on with
``continue_on_error``.  Worker processes take servers in turn, at most
``server_workers`` on one server at a time (:mod:`.parallel`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ...database.connections import run_on_options
from ...database.engines import display_url
from ...database.errors import first_line
from ...logs import logger_for
from ..model.tenant import Server
from ..records.outcomes import Outcome
from ..records.record import Row
from ..selection.discovery import catalog
from .interface import TenantStrategy, recorded
from .run import Run

__all__ = ["Group", "ServerTenants", "groups_of"]

T = TypeVar("T")
log = logger_for(__name__)


@dataclass
class Group:
    """Tenants that worker processes run on one server (or on the one
    database without ``servers``)."""

    strategy: TenantStrategy
    names: list[str]
    server: str | None = None


class _Part:
    """One server: its strategy, its tenants, whether it answers."""

    def __init__(self, server: Server, strategy: TenantStrategy) -> None:
        self.server = server
        self.strategy = strategy
        self.names: list[str] = []
        self.down: CommandError | None = None
        """Why the server cannot be reached (None: it answers)."""

    def mark_down(self, exc: Exception) -> None:
        if self.down is not None:
            return
        shown = self.server.display_url
        self.down = CommandError(
            f"server {self.server.name} ({shown}) cannot be reached: {first_line(exc)}"
        )
        self.down.__cause__ = exc
        log.error(
            "Server %s (%s) cannot be reached: %s",
            self.server.name,
            shown,
            first_line(exc),
        )


class ServerTenants:
    """The tenants of every server, one strategy per server (a
    :class:`~.strategy.TenantStrategy`)."""

    def __init__(
        self, run: Run, on_one_server: Callable[[Run], TenantStrategy]
    ) -> None:
        self.run = run
        self._on_one_server = on_one_server
        self._parts: dict[str, _Part] | None = None
        self.owner: dict[str, str] = {}
        """Each selected tenant's server."""

    @property
    def parts(self) -> dict[str, _Part]:
        """The servers' strategies; the catalog is read once, for them all."""
        if self._parts is None:
            settings = self.run.settings
            placed = catalog(settings)
            self._parts = {}
            for server in settings.servers:
                mine = [name for name, where in placed.items() if where == server.name]
                on_server = self.run.on_server(server.name, mine)
                self._parts[server.name] = _Part(server, self._on_one_server(on_server))
        return self._parts

    def on_connection(self, fn: Callable[[], T]) -> T:
        """Call *fn* with every server's connection open; a server that does
        not answer is marked down (its tenants fail), the others serve."""
        parts = [part for part in self.parts.values() if part.down is None]

        def nest(index: int) -> T:
            if index == len(parts):
                return fn()
            part = parts[index]
            entered = False

            def inner() -> T:
                nonlocal entered
                entered = True
                return nest(index + 1)

            try:
                return part.strategy.on_connection(inner)
            except Exception as exc:
                if entered:
                    raise
                part.mark_down(exc)
                return nest(index + 1)

        return nest(0)

    def known(self) -> list[str]:
        """Every server's known tenants, server by server; a tenant known on
        two servers is an error naming both."""
        seen: dict[str, str] = {}
        for part in self.parts.values():
            for name in self._known_on(part):
                _one_server(name, seen.setdefault(name, part.server.name), part)
        self.owner.update(seen)
        return list(seen)

    def _known_on(self, part: _Part) -> list[str]:
        listed = list(part.strategy.run.settings.tenants)
        if part.down is not None:
            return listed  # what the ini and the catalog say is there
        try:
            return part.strategy.known()
        except Exception as exc:
            part.mark_down(exc)
            return listed

    def read_record(self, fn: Callable[[Connection, str | None], T]) -> T | None:
        """``fn`` on the catalog's database (``tenants_url``), where claiming
        runners over the servers keep their claims; None without a catalog
        (each server's run record is its own: :meth:`record_rows`)."""
        url = self.run.settings.tenants_url
        if url is None:
            return None
        return run_on_options(
            {"sqlalchemy.url": url},
            lambda conn: fn(conn, None),
            where=f"tenants_url ({display_url(url)})",
            section="tenants_url",
        )

    def record_rows(self) -> list[Row] | None:
        """The rows of every reachable server's run record, the latest of
        each tenant (a server that did not answer had its tenants recorded
        in another's); None: no run recorded on any."""
        latest: dict[str, Row] | None = None
        for part in self.parts.values():
            rows = part.strategy.record_rows() if part.down is None else None
            for row in rows or ():
                latest = latest if latest is not None else {}
                seen = latest.get(row.tenant)
                if seen is None or _newer(row, seen):
                    latest[row.tenant] = row
            if rows is not None and latest is None:
                latest = {}
        return None if latest is None else list(latest.values())

    def versions_of(self, names: list[str]) -> dict[str, list[str] | None]:
        """The versions of *names*, read on their servers (None: not there,
        or its server does not answer)."""
        known = set(self.known())
        found: dict[str, list[str] | None] = dict.fromkeys(names)
        for part in self.parts.values():
            mine = [
                n for n in names if n in known and self.owner[n] == part.server.name
            ]
            if mine and part.down is None:
                found.update(part.strategy.versions_of(mine))
        return found

    def select(self) -> list[str]:
        """The tenants of this run across the servers, each handed to its
        server's strategy."""
        names = self.run.select(None, partial(recorded, self), self.known)
        self.take(names)
        return names

    def take(self, names: Sequence[str]) -> None:
        """Place *names* on their servers; each reachable server reads its own."""
        self._place(names)
        report = self.run.report
        report.servers = {name: self.owner[name] for name in names}
        self.run.selection.across_servers(
            lambda name: self._part_of(name).strategy.run.selection
        )
        for part in self.parts.values():
            part.names = self._on(part, names)
            if part.down is None and part.names:
                part.strategy.take(part.names)

    def _place(self, names: Sequence[str]) -> None:
        """The server of every tenant in *names*: from the lists and the
        catalog, else from what the servers hold, else the one server given."""
        unplaced = [name for name in names if name not in self.owner]
        listed: dict[str, str] = {}
        for part in self.parts.values():
            for name in part.strategy.run.settings.tenants:
                _one_server(name, listed.setdefault(name, part.server.name), part)
        for name in unplaced:
            if name in listed:
                self.owner[name] = listed[name]
        if any(name not in self.owner for name in unplaced):
            self.known()
        for name in names:
            if name not in self.owner:
                self.owner[name] = self._only_server(name)

    def _only_server(self, name: str) -> str:
        """The server of tenant *name*, placed nowhere: the one server given,
        else the one-line error."""
        servers = self.run.settings.servers
        if len(servers) != 1:
            raise CommandError(
                f"tenant {name!r} is on none of the servers"
                f" ({', '.join(s.name for s in servers)}): list it in a server's"
                " tenants, return it from tenants_query with its server, or"
                " pass -x server=NAME to run it on that server"
            )
        return servers[0].name

    def _on(self, part: _Part, names: Sequence[str]) -> list[str]:
        """Those of *names* that live on *part*'s server, in order."""
        return [name for name in names if self.owner[name] == part.server.name]

    def _part_of(self, name: str) -> _Part:
        return self.parts[self.owner[name]]

    def at_head(self, name: str) -> bool | None:
        part = self._part_of(name)
        return False if part.down is not None else part.strategy.at_head(name)

    def prepare_workers(self, names: Sequence[str]) -> None:
        for part in self.parts.values():
            mine = self._on(part, names)
            if part.down is None and mine:
                part.strategy.prepare_workers(mine)

    def verify(self, name: str) -> tuple[list[str] | None, list[str] | None]:
        """Tenant *name*'s versions before and now, read on its server."""
        part = self._part_of(name)
        if part.down is not None:
            raise part.down
        return part.strategy.verify(name)

    def current(self, name: str) -> list[str] | None:
        part = self._part_of(name)
        if part.down is not None:
            raise part.down
        return part.strategy.current(name)

    def one(self, name: str) -> Outcome:
        """Migrate tenant *name* on its server.  After a failure, a server
        that no longer answers is marked down: its other tenants fail at once."""
        part = self._part_of(name)
        if part.down is not None:
            raise part.down
        try:
            return part.strategy.one(name)
        except Exception:
            try:
                part.strategy.on_connection(lambda: None)
            except Exception as exc:
                part.mark_down(exc)
            raise

    def groups(self, names: Sequence[str]) -> tuple[list[Group], list[str]]:
        """*names* by server for worker processes, and the tenants of servers
        that cannot be reached."""
        groups = []
        unreachable = []
        for part in self.parts.values():
            mine = self._on(part, names)
            if part.down is not None:
                unreachable += mine
            elif mine:
                groups.append(Group(part.strategy, mine, part.server.name))
        return groups, unreachable


def _newer(row: Row, than: Row) -> bool:
    """*row* was written after *than* (a row without a time is the older)."""
    if than.updated is None:
        return True
    return row.updated is not None and row.updated > than.updated


def _one_server(name: str, first: str, part: _Part) -> None:
    """Tenant *name*, seen on server *first*, is also on *part*'s: an error."""
    if first != part.server.name:
        raise CommandError(
            f"tenant {name!r} is known on servers {first} and {part.server.name}:"
            " a tenant lives on one server"
        )


def groups_of(
    strategy: TenantStrategy, names: Sequence[str]
) -> tuple[list[Group], list[str]]:
    """*names* as worker groups: one per server with ``servers``, else one;
    and the tenants of servers that cannot be reached."""
    if isinstance(strategy, ServerTenants):
        return strategy.groups(names)
    return [Group(strategy, list(names))], []
