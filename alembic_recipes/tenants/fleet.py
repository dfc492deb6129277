"""One multitenant command over its tenants: what it runs, and each tenant's run.

A :class:`Fleet` holds what the command is (its destination, the heads) and
composes the :class:`~.selection.Selection` (which tenants, which may be
created), the :class:`~.report.Report` (lines, failures, the summary) and
the :class:`~.journal.Journal` (the run record, written as the run goes).  A
run over exactly one tenant lets that tenant's exception through unchanged,
as stock Alembic would.

A stop (SIGTERM, Ctrl-C: :mod:`~alembic_recipes.database.stopping`) ends the tenant
running -- its statement cancelled, its transaction rolled back -- and the
run; what became of that tenant is read back from its database before it is
reported, never assumed.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from alembic import context
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ..alembic_internals import (
    autogenerate_ops,
    configured,
    current_is_plain,
    environment,
)
from ..database.connections import connection_lost, first_line
from ..database.locks import migration_lock
from ..database.retries import LockTimeout, backoff, lock_timeout_of
from ..database.stopping import finishing, pause, requested, signal_name, stopped_by
from ..logs import logger_for
from ..runtime.output import labelled_stdout
from .config import Tenant, TenantSettings
from .journal import Journal
from .progress import Progress
from .repair import NeedsRepair
from .report import MIGRATED_ELSEWHERE, Outcome, Report, diff_lines, shown_revisions
from .rollout import Wave, waves_of
from .selection import AUTOGENERATE_COMMANDS, Selection

__all__ = ["MIGRATED_ELSEWHERE", "Fleet", "Outcome", "Verify", "Work"]

Work = Callable[[], Outcome]
_CONCURRENTLY = re.compile(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY", re.I)
Verify = Callable[[str], tuple[list[str] | None, list[str] | None]]
"""A tenant's versions when its run started, as far as known, and read afresh
now (None: not known; its schema or database is missing)."""
log = logger_for(__name__)


class Fleet:
    """The state of one multitenant command over its tenants."""

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
        # env.py's own script directory: its revision files are loaded already
        env = environment()
        self.script: ScriptDirectory = (
            env.script
            if env is not None and env.config is self.config
            else ScriptDirectory.from_config(self.config)
        )
        self.heads = frozenset(self.script.get_heads())
        self.command = settings.command
        try:  # resolved: "head" comes back as the head revision's id
            destination = context.get_revision_argument()
        except KeyError:  # commands without a destination (current, revision)
            destination = None
        self.targets: tuple[str, ...] = (
            (destination,) if isinstance(destination, str) else tuple(destination or ())
        )
        self.skip_at_head = self.command in ("upgrade", "stamp") and (
            frozenset(self.targets) == self.heads
        )
        self.selection = Selection(settings, shared=shared)
        self.report = report or Report(
            self.command,
            self.heads,
            self.steps,
            shared=shared,
            keep_going=settings.keep_going,
            path=None if shared else settings.report,
            progress=Progress(
                settings.progress,
                settings.progress_interval,
                changes=self.command in ("upgrade", "downgrade", "stamp")
                and not shared
                and not settings.plan,
            ),
        )
        self.journal = journal or Journal(
            self.command,
            self.heads,
            self.targets,
            records=False,  # decided when the tenants are chosen (records)
            server_of=lambda name: self.report.servers.get(name),
        )
        if journal is None:
            self.report.listeners.append(self.journal.reported)
            if settings.shard is not None:
                self.journal.shard = "{}/{}".format(*settings.shard)
        self._ancestors: dict[tuple[str, ...], frozenset[str]] = {}
        self._planned: dict[str, list[str]] = {}
        self._current_lines: dict[tuple[str, ...], list[str]] = {}
        self.deferred: list[tuple[int, str]] = []
        """``(index, name)`` of tenants to run again after a lock timeout."""
        self._attempts: dict[str, int] = {}
        self._timed_out: dict[str, Exception] = {}
        """Each deferred tenant's last lock timeout."""
        self.differences: dict[str, list[str]] = {}
        """``check`` over a fleet: each compared tenant's differences from
        the target metadata, as the operations a revision would get."""

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

    def run_to_its_end(self, run: Callable[[], None]) -> None:
        """Call *run*, the tenants' part; a stop (SIGTERM, Ctrl-C: whatever
        it raised) ends it as an interruption.  Then the run's last part,
        which a second signal does not cut short: the progress display
        closed, the record's tenants not reached marked."""
        try:
            run()
        except (Exception, KeyboardInterrupt) as exc:
            if not stopped_by(exc):
                raise
            self.report.interrupt(requested())
        with finishing():
            if self.deferred:
                signum = requested()
                self.abandon_deferred(
                    f"the run was stopped by {signal_name(signum)}"
                    if signum is not None
                    else "the run stopped at an earlier failure"
                )
            self.report.progress.close()
            self.journal.finish()

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

    def run_one(
        self, index: int, name: str, work: Work, verify: Verify | None = None
    ) -> bool:
        """Run *work* for tenant *name*; log one line; False to stop the fleet.

        A lock timeout puts the tenant aside (:attr:`deferred`) to run again
        after the others, ``lock_retries`` times; then it fails naming who
        held the lock (:class:`~alembic_recipes.database.retries.LockTimeout`).  A stop
        (SIGTERM, Ctrl-C) reads the tenant's versions again (*verify*) and
        reports what its database says."""
        started = time.perf_counter()
        self.journal.start(name)
        try:
            with self._labelled_stdout(name):
                result = work()
        except KeyboardInterrupt:  # a second Ctrl-C, or a stop that hung
            self.stopped_on(index, name, verify, time.perf_counter() - started)
            return False
        except Exception as exc:
            if requested() is not None and not isinstance(exc, NeedsRepair):
                seconds = time.perf_counter() - started  # the stop, in the
                self.stopped_on(index, name, verify, seconds)  # driver's words
                return False
            self._environment_error(exc)
            failure = self._failure_of(index, name, exc)
            if failure is None:
                return True  # deferred
            if self.report.total == 1:
                if failure is exc:
                    raise  # one tenant: its error, unchanged, as stock Alembic
                raise failure from exc
            seconds = time.perf_counter() - started
            self.report.record_failure(index, name, failure, seconds)
            return self.settings.keep_going or self.checks_fleet
        seconds = time.perf_counter() - started
        diff = self.differences.pop(name, None)
        self.report.record(index, name, result, seconds, diff=diff)
        return True

    def stopped_on(
        self, index: int, name: str, verify: Verify | None, seconds: float
    ) -> None:
        """The run stopped while tenant *name* ran: read its versions again
        (*verify*) and report what its database says -- done, when its commit
        got through first; stopped part-way, when an ``autocommit_block()``
        had committed some of it; else rolled back."""
        self.report.interrupt(requested())
        before: list[str] | None = None
        now: list[str] | None = None
        if verify is not None and self.targets:
            try:
                before, now = verify(name)
            except Exception as exc:
                log.warning(
                    "%s could not read its version after the stop: %s",
                    self.report.prefix(index, name),
                    first_line(exc),
                )
        if now is not None and frozenset(now) == self.reached:
            self.report.record_committed(index, name, now, seconds)
            self.journal.committed(name, now)
            return
        if now is not None and before is not None and sorted(now) != sorted(before):
            self.report.record_interrupted(name, seconds, at=now)
            return
        self.report.record_interrupted(name, seconds)

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

    def _environment_error(self, exc: Exception) -> None:
        """Autogenerate without models is env.py's error, not each tenant's:
        raise it once, before the next tenant meets it too."""
        if not self.autogenerates or not isinstance(exc, CommandError):
            return
        opts = configured("target_metadata")  # {}: env.py did not get so far
        if opts and opts["target_metadata"] is None:
            raise CommandError(
                f"alembic {self.command} compares your models with each tenant, and"
                " env.py gives no models: set target_metadata to your MetaData"
                " (where env.py says 'add your model's MetaData object here')"
            ) from exc

    def _failure_of(self, index: int, name: str, exc: Exception) -> Exception | None:
        """*exc*, a one-line error for it (a :class:`LockTimeout`, a lost
        connection), or None when the tenant was put aside to run again."""
        lost = connection_lost(exc)
        if lost is not None:
            failure: Exception = CommandError(f"{name}: {lost}")
            failure.__cause__ = exc
            return failure
        timeout = lock_timeout_of(exc)
        if timeout is None or isinstance(exc, CommandError):
            return exc  # ours (a LockTimeout, a repair to make) is final
        attempts = self._attempts.get(name, 0) + 1
        self._attempts[name] = attempts
        if attempts > self.settings.lock_retries:
            failure = LockTimeout(name, timeout, attempts)
            failure.__cause__ = exc
            return failure
        prefix = self.report.prefix(index, name)
        undone = (
            "its INVALID index is built again when it"  # online_ddl does that
            if _CONCURRENTLY.match(timeout.statement)
            else "rolled back,"
        )
        log.warning(
            "%s %s; %s runs again after the other tenants (retry %d of %d)",
            prefix,
            timeout.describe(),
            undone,
            attempts,
            self.settings.lock_retries,
        )
        self.deferred.append((index, name))
        self._timed_out[name] = exc
        return None

    def abandon_deferred(self, why: str) -> None:
        """The run ends with tenants still put aside after a lock timeout:
        each fails with that timeout, not run again (*why*)."""
        for index, name in self.deferred:
            exc = self._timed_out[name]
            timeout = lock_timeout_of(exc)
            assert timeout is not None
            failure = LockTimeout(name, timeout, self._attempts[name], why_not=why)
            failure.__cause__ = exc
            self.report.record_failure(index, name, failure, 0.0)
        self.deferred.clear()

    def run_deferred(
        self, work_for: Callable[[str], Work], verify: Verify | None = None
    ) -> None:
        """Run the tenants put aside after lock timeouts again, each after a
        pause that grows with its attempts (cut short by a stop), until none
        is left."""
        while self.deferred:
            batch, self.deferred = self.deferred, []
            pause(backoff(max(self._attempts[name] for _, name in batch)))
            for position, (index, name) in enumerate(batch):
                if not self.run_one(index, name, work_for(name), verify):
                    self.deferred[:0] = batch[position + 1 :]  # not run again
                    return

    def plan_one(self, index: int, name: str, before: list[str] | None) -> None:
        """Log what this command would do to tenant *name* (at *before*; None:
        missing), changing nothing."""
        prefix = self.report.prefix(index, name)
        targets = list(self.targets)
        if before is None:
            if self.command != "upgrade" or not self.selection.may_create(name):
                state = "missing: would fail (not created: create_tenants)"
                self._planned.setdefault("would fail", []).append(name)
                log.info("%s %s", prefix, state)
                return
            before = []
            created = "missing: would be created, then "
        else:
            created = ""
        steps = self.steps(before, targets) if targets else 0
        if not steps:
            self._planned.setdefault("nothing to run", []).append(name)
            log.info("%s %s: nothing to run", prefix, shown_revisions(before))
            return
        verb = {"upgrade": "upgrade", "downgrade": "downgrade"}.get(self.command)
        self._planned.setdefault(f"would {verb or self.command}", []).append(name)
        log.info(
            "%s %s%s -> %s: would %s %d revision%s",
            prefix,
            created,
            shown_revisions(before),
            shown_revisions(targets),
            verb or self.command,
            steps,
            "" if steps == 1 else "s",
        )

    def finish_plan(self) -> None:
        """The plan's summary line."""
        parts = [f"{len(v)} {k}" for k, v in self._planned.items()]
        log.info(
            "Plan: %d tenants: %s; nothing was changed",
            self.report.total,
            ", ".join(parts) or "none",
        )

    def waves(self, names: Sequence[str]) -> list[Wave]:
        """The waves of this run (``rollout``; one wave without it)."""
        settings = self.settings
        part = (
            "a shard"
            if settings.shard is not None
            else "a resume"
            if settings.resumes
            else None
        )
        return waves_of(settings.rollout, names, part=part)

    def plan_waves(self, waves: Sequence[Wave]) -> None:
        """The plan's line on the rollout: each wave and its tenants' count."""
        log.info(
            "Plan: rollout in %d waves: %s",
            len(waves),
            "; ".join(
                f"{wave.label(len(waves))}: {len(wave.names)} tenant"
                f"{'' if len(wave.names) == 1 else 's'}"
                for wave in waves
            ),
        )

    def wave_starts(self, wave: Wave, count: int) -> None:
        """*wave* (one of *count*) begins: the progress display says so."""
        if count > 1:
            self.report.progress.in_wave(wave.label(count))

    def wave_must_stop(self, failures_before: int) -> bool:
        """After a tenant asked to stop: True unless a rollout wave may still
        have failures (``max_failures``) and the run was not interrupted."""
        if self.report.was_interrupted or not self.settings.rollout:
            return True
        failed = len(self.report.failures) - failures_before
        return failed > self.settings.max_failures

    def wave_done(
        self, wave: Wave, count: int, failures_before: int, stopped: bool
    ) -> bool:
        """Log the end of *wave* (one of *count*); False when the later waves
        must not start: the wave stopped, or had more than ``max_failures``
        failed tenants."""
        if count == 1 or self.report.was_interrupted:
            return not stopped
        failed = len(self.report.failures) - failures_before
        label = wave.label(count)
        if stopped or failed > self.settings.max_failures:
            self.rollout_stops(label, failed)
            return False
        log.info(
            "Rollout: %s done: %d tenant%s, %d failed",
            label,
            len(wave.names),
            "" if len(wave.names) == 1 else "s",
            failed,
        )
        return True

    def rollout_stops(self, label: str, failed: int) -> None:
        """Rollout wave *label* had *failed* tenants, too many: the later
        waves are not attempted (the summary says where it stopped)."""
        self.report.stopped_at = label
        log.warning(
            "Rollout: %s had %d failed tenant%s (max_failures = %d): the later"
            " waves are not attempted",
            label,
            failed,
            "" if failed == 1 else "s",
            self.settings.max_failures,
        )

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

    def _labelled_stdout(self, name: str) -> AbstractContextManager[None]:
        """``current`` over several tenants: prefix each printed line with the
        tenant's name (``acme: 3f2a9c (head)``)."""
        if self.shared:
            return labelled_stdout(self.config, "shared: ")
        several = (
            self.report.total > 1 or self.settings.every or self.settings.shared_runs
        )
        return labelled_stdout(self.config, f"{name}: " if several else None)
