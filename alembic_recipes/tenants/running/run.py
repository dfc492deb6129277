"""One multitenant command over its tenants: what it is, and what it has.

A :class:`Run` holds what the command is (its destination, the heads, the
settings) and composes the :class:`~.selection.Selection` (which tenants,
which may be created), the :class:`~.report.Report` (lines, failures, the
summary) and the :class:`~.journal.Journal` (the run record, written as the
run goes).  The strategies (:mod:`.interface`) are given a run; the drivers
(:mod:`.fleet`, :mod:`.serial`, :mod:`.parallel`, :mod:`.claiming`) run its
tenants.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ...alembic_internals import autogenerate_ops, current_is_plain, environment
from ...database.errors import first_line
from ...database.locks import migration_lock
from ...logs import logger_for
from ...runtime.output import labelled_stdout
from ..model.settings import TenantSettings
from ..model.tenant import Tenant
from ..records.journal import Journal
from ..records.outcomes import diff_lines
from ..records.progress import Progress
from ..records.report import Report
from ..selection.selection import AUTOGENERATE_COMMANDS, Selection

__all__ = ["Run"]

log = logger_for(__name__)


class Run:
    """One multitenant command over its tenants: what it is, and its parts."""

    def __init__(
        self,
        settings: TenantSettings,
        *,
        shared: bool = False,
        report: Report | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.settings = settings
        self.shared = shared
        """This run migrates the shared scope (``shared_scope``) alone."""
        self.config = settings.config
        self.script = _script_of(settings)
        self.heads = frozenset(self.script.get_heads())
        self.command = settings.command
        self.targets = _targets()
        self.skip_at_head = self.command in ("upgrade", "stamp") and (
            frozenset(self.targets) == self.heads
        )
        self.selection = Selection(settings, shared=shared)
        self.report = report or self._new_report()
        self.journal = journal or self._new_journal()
        self._ancestors: dict[tuple[str, ...], frozenset[str]] = {}
        self._current_lines: dict[tuple[str, ...], list[str]] = {}
        self.differences: dict[str, list[str]] = {}
        """``check`` over a fleet: each compared tenant's differences from
        the target metadata, as the operations a revision would get."""

    def _new_report(self) -> Report:
        settings, shared = self.settings, self.shared
        changes = self.command in ("upgrade", "downgrade", "stamp")
        return Report(
            self.command,
            self.heads,
            self.steps,
            shared=shared,
            keep_going=settings.keep_going,
            path=None if shared else settings.report,
            progress=Progress(
                settings.progress,
                settings.progress_interval,
                changes=changes and not shared and not settings.plan,
            ),
        )

    def _new_journal(self) -> Journal:
        """This run's record, listening to its report."""
        journal = Journal(
            self.command,
            self.heads,
            self.targets,
            records=False,  # decided when the tenants are chosen (records)
            server_of=lambda name: self.report.servers.get(name),
        )
        self.report.listeners.append(journal.reported)
        if self.settings.shard is not None:
            journal.shard = "{}/{}".format(*self.settings.shard)
        return journal

    @property
    def is_fleet(self) -> bool:
        """Selected as a fleet (``all``, a pattern, ``failed``, several names),
        not one named tenant -- which behaves as stock Alembic does."""
        settings = self.settings
        return (
            len(self.report.names) > 1
            or settings.needs_known
            or settings.resumes
            or bool(self.report.servers)
        )

    @property
    def checks_fleet(self) -> bool:
        """``check`` over a fleet: every tenant is compared and reported, not
        only the first difference."""
        return self.command == "check" and self.is_fleet

    def comparing(
        self, migrate: Callable[[Connection, Tenant], None]
    ) -> Callable[[Connection, Tenant], None]:
        """*migrate*, which for a fleet ``check`` also keeps what each
        tenant's comparison found (:attr:`differences`).  A tenant's findings
        are taken out of the revision Alembic builds, so that Alembic's own
        verdict at the end covers only what no tenant line reported (the shared
        scope's)."""
        if self.command != "check":
            return migrate

        def compare(conn: Connection, tenant: Tenant) -> None:
            migrate(conn, tenant)
            if self.checks_fleet:
                migration_context = context.get_context()
                found = autogenerate_ops(migration_context, take=not tenant.shared)
                if found is not None:
                    lines = diff_lines(found, migration_context)
                    self.differences[tenant.name] = lines

        return compare

    @property
    def autogenerates(self) -> bool:
        """True for ``revision`` and ``check``: env.py compares, nothing runs."""
        return self.command in AUTOGENERATE_COMMANDS

    @property
    def records(self) -> bool:
        """This run's outcomes go into the run record (:mod:`.record`)."""
        return (
            self.is_fleet  # one named tenant: as stock Alembic, nothing kept
            and self.command in ("upgrade", "downgrade", "stamp")
            and not self.shared
            and not self.settings.plan
        )

    def begin_record(
        self, names: Sequence[str], at_head: Callable[[str], bool | None]
    ) -> None:
        """Record this run's intent: its tenants, ``pending`` (see
        :meth:`~.journal.Journal.begin`); nothing when it keeps no record."""
        self.journal.active = self.records and bool(names)
        self.journal.begin(names, at_head)

    @property
    def writes(self) -> bool:
        """True for commands that change the database (may create tenants)."""
        return self.command not in ("current", *AUTOGENERATE_COMMANDS)

    def select(
        self,
        conn: Connection | None,
        recorded: Callable[..., list[str] | None] = lambda check=True: None,
        known: Callable[[], list[str]] | None = None,
    ) -> list[str]:
        """The tenants of this run, in order; validated, no SQL sent for them
        yet (*recorded*: reads the run record, for ``-x tenant=failed``;
        *known*: the known tenants, when not those of this one server)."""
        names = self.selection.names(conn, recorded, known)
        self.report.begin(names)
        if self.command == "current" and self.is_fleet:
            try:  # status only: a record that cannot be read is said, not raised
                self.report.unfinished = recorded(False)
            except Exception as exc:
                log.warning("could not read the run record: %s", first_line(exc))
        return names

    @functools.cached_property
    def prints_current(self) -> bool:
        """``current`` over a fleet, plain (no ``--verbose``, no
        ``--check-heads``): a strategy that read every tenant's versions at
        once prints each tenant's revision itself (:meth:`print_current`),
        as Alembic would, without running env.py per tenant."""
        return self.command == "current" and self.is_fleet and (current_is_plain())

    def print_current(self, versions: Sequence[str]) -> None:
        """Print *versions* as ``alembic current`` does (``3f2a9c (head)``)."""
        key = tuple(sorted(versions))
        if key not in self._current_lines:
            self._current_lines[key] = [
                revision.cmd_format(False)
                for revision in self.script.get_all_current(key)
            ]
        for line in self._current_lines[key]:
            self.config.print_stdout(line)

    # -- one tenant --------------------------------------------------------------
    def lock(
        self, conn: Connection, *, schema: str | None = None
    ) -> AbstractContextManager[None]:
        """The tenant's migration lock (on *conn*), when this command takes it."""
        if not self.settings.locks():
            return nullcontext()
        timeout = self.settings.migration_lock_timeout
        return migration_lock(conn, schema=schema, timeout=timeout)

    def at_head(self, versions: Sequence[str]) -> bool:
        return self.skip_at_head and frozenset(versions) == self.heads

    @property
    def reached(self) -> frozenset[str] | None:
        """The versions of a tenant this command has finished: its targets
        when they are revisions of the script (not ``-1``, say)."""
        wanted = [t for t in self.targets if t != "base"]
        try:
            known = all(self.script.get_revision(t) is not None for t in wanted)
        except Exception:
            return None
        return frozenset(wanted) if known else None

    def known_revisions(self, revisions: Sequence[str]) -> bool:
        """Whether every one of *revisions* is a revision of this script."""
        try:
            return all(self.script.get_revision(r) is not None for r in revisions)
        except Exception:  # an unknown or partial id: not ours
            return False

    def applied(self, revision: str, versions: Sequence[str]) -> bool:
        """Whether *revision* is applied at *versions* (one of them or their
        ancestors)."""
        return revision in self._ancestors_of(versions)

    def steps(self, before: Sequence[str], after: Sequence[str]) -> int:
        """How many revisions lie between versions *before* and *after*."""
        return len(self._ancestors_of(before) ^ self._ancestors_of(after))

    def _ancestors_of(self, heads: Sequence[str]) -> frozenset[str]:
        key = tuple(sorted(heads))
        if key not in self._ancestors:
            revisions = self.script.iterate_revisions(key, "base") if key else []
            self._ancestors[key] = frozenset(r.revision for r in revisions)
        return self._ancestors[key]

    def labelled_stdout(self, name: str) -> AbstractContextManager[None]:
        """``current`` over several tenants: prefix each printed line with the
        tenant's name (``acme: 3f2a9c (head)``)."""
        if self.shared:
            return labelled_stdout(self.config, "shared: ")
        several = (
            self.report.total > 1 or self.settings.every or self.settings.shared_runs
        )
        return labelled_stdout(self.config, f"{name}: " if several else None)

    def on_server(self, name: str, catalog: Sequence[str] = ()) -> Run:
        """This run on server *name* of ``servers`` (its settings, see
        :meth:`~.config.TenantSettings.on_server`), sharing this run's report
        and record."""
        return Run(
            self.settings.on_server(name, catalog),
            report=self.report,
            journal=self.journal,
        )


def _script_of(settings: TenantSettings) -> ScriptDirectory:
    """env.py's own script directory (its revision files are loaded already),
    else the config's."""
    env = environment()
    if env is not None and env.config is settings.config:
        return env.script
    return ScriptDirectory.from_config(settings.config)


def _targets() -> tuple[str, ...]:
    """The command's destination revisions, resolved (``head`` comes back as
    the head revision's id); none for commands without one."""
    try:
        destination = context.get_revision_argument()
    except KeyError:  # commands without a destination (current, revision)
        return ()
    if isinstance(destination, str):
        return (destination,)
    return tuple(destination or ())
