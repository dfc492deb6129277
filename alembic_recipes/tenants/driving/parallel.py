"""Parallel fleets: ``-x workers=N`` / ``fleet_workers = N`` worker processes.

Alembic's ``context`` and ``op`` are module globals, so tenants run in
parallel in processes, not threads.  The parent reads the fleet once (which
tenants, who is at head), then forks N workers; each opens its own
connection(s) and takes the next tenant of one shared list (a counter shared
by the workers), so a slow tenant does not hold back the others' share.  With
``servers``, a list per server: workers take the servers in turn, at most
``server_workers`` on one at a time (:mod:`.servers`).  Every tenant still
runs under its own lock, in its own transaction.  The parent logs the
per-tenant lines in completion order (``[k/n]``) and the one summary.

Stop at the first failure (the default): no worker starts another tenant; those
in flight finish their transaction.  ``continue=true`` goes on.  Each worker
writes its tenants' rows of the run record itself (:mod:`.journal`).

Ctrl-C or SIGTERM (:mod:`~alembic_recipes.database.stopping`) reach the parent, which
sends SIGTERM to its workers: each cancels its running statement on the server
and ends at once, and its transaction rolls back.  The parent waits a few
seconds for them (then kills what is left), reads the versions of the tenants
that were running to say what became of each, and the summary says what was
not attempted.  Where forking is not safe (no ``fork`` on the platform, other
threads running, a connection shared by the caller), the fleet runs in this
process, one tenant after the other, and says so.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from functools import partial
from typing import Any

from alembic.util import CommandError

from ...database.errors import connection_lost, first_line
from ...database.retries import with_lock_retries
from ...database.stopping import as_worker, check, on_stop, parent_is_gone, requested
from ...logs import logger_for
from ..records.outcomes import Outcome, failure_cause
from ..running.interface import TenantStrategy
from ..running.run import Run
from ..running.servers import Group, groups_of
from .fleet import Fleet
from .serial import choose

__all__ = ["can_fork", "run_parallel"]

log = logger_for(__name__)

_POLL = 0.1
_GRACE = 3.0
"""Seconds the parent waits for its workers to end after a stop, before it
kills what is left."""


def can_fork(run: Run) -> str | None:
    """Why *run* cannot run in worker processes, or None when it can."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork"
    if threading.active_count() > 1:
        return "other threads are running in this process"
    if run.config.attributes.get("connection") is not None:
        return "config.attributes['connection'] is one shared connection"
    return None


@dataclass
class _Failure:
    """A worker's failure, as the parent logs and raises it."""

    text: str
    """The full error: traceback and SQL, or one line for a CommandError."""
    exception: bytes | None
    """The pickled exception, when it pickles."""

    @classmethod
    def of(cls, exc: Exception) -> _Failure:
        if isinstance(exc, CommandError):
            text = str(exc)
            cause = exc.__cause__ if getattr(exc, "show_cause", False) else None
            if cause is not None:
                text += "\n" + "".join(traceback.format_exception(cause)).rstrip()
        else:
            text = "".join(traceback.format_exception(exc)).rstrip()
        pickled: bytes | None
        try:
            pickled = pickle.dumps(exc)
            pickle.loads(pickled)  # some exceptions pickle but do not unpickle
        except Exception:
            pickled = None
        return cls(text, pickled)

    def exception_object(self) -> Exception:
        if self.exception is not None:
            try:
                exc = pickle.loads(self.exception)
                if isinstance(exc, Exception):
                    return exc
            except Exception:
                pass
        return RuntimeError(self.text)


# -- worker side ---------------------------------------------------------------
class _Tasks:
    """One group's tenants, taken in order by any number of workers: the
    list is inherited at the fork, a shared counter says how far it is."""

    def __init__(self, group: Group, context: Any, slots: int) -> None:
        self.group = group
        self.next = context.Value("i", 0)
        self.slots = context.BoundedSemaphore(slots)
        """Workers on this group's server at once (``server_workers``)."""

    def take(self) -> str | None:
        """The next tenant, or None when every one was taken."""
        with self.next.get_lock():
            index = self.next.value
            if index >= len(self.group.names):
                return None
            self.next.value = index + 1
        return str(self.group.names[index])

    def left(self) -> bool:
        return bool(self.next.value < len(self.group.names))


def _work(
    strategy: TenantStrategy,
    tasks: _Tasks,
    results: Any,
    stop: Any,
    parent: int,
) -> bool:
    """Take tenants from *tasks* until none is left or *stop* is set; a lock
    timeout runs the tenant again in place (the other workers go on).  A
    failure's row of the run record is written here.  True when a tenant
    lost the connection: the caller opens a new one."""
    journal = strategy.run.journal
    retries = strategy.run.settings.lock_retries
    while not stop.is_set() and not parent_is_gone(parent):
        name = tasks.take()
        if name is None:
            return False
        results.put((name, "started", None, 0.0))
        journal.start(name)
        started = time.perf_counter()
        try:
            outcome: Outcome | _Failure = with_lock_retries(
                partial(strategy.one, name), retries, name
            )
        except Exception as exc:
            lost = connection_lost(exc)
            error = exc if lost is None else CommandError(f"{name}: {lost}")
            _failed(strategy, results, name, error, time.perf_counter() - started)
            if lost is not None:
                return True
            continue
        results.put((name, "done", outcome, time.perf_counter() - started))
    return False


def _failed(
    strategy: TenantStrategy, results: Any, name: str, error: Exception, seconds: float
) -> None:
    """Tenant *name* failed in this worker: its row of the run record, then
    the parent's message."""
    entry = {"status": "failed", "error": failure_cause(error), "seconds": seconds}
    strategy.run.journal.reported(name, entry)
    results.put((name, "done", _Failure.of(error), seconds))


def _worker_main(groups: list[_Tasks], first: int, results: Any, stop: Any) -> None:
    """A forked worker: its own connection, tenants from the shared list;
    it ends when the parent dies, whatever killed it.  With several servers
    it takes them in turn from *first*, on those with a free slot."""
    parent = as_worker()
    try:
        for tasks in groups[first:] + groups[:first]:
            if stop.is_set() or parent_is_gone(parent):
                break
            if tasks.left() and tasks.slots.acquire(block=False):
                try:
                    _on_group(tasks, results, stop, parent)
                finally:
                    tasks.slots.release()
    except BaseException as exc:  # cannot even connect: the parent reports it
        failure = _Failure.of(exc if isinstance(exc, Exception) else RuntimeError(exc))
        results.put(("", "worker failed", failure, 0.0))
    finally:
        results.put(("", "exit", None, 0.0))


def _on_group(tasks: _Tasks, results: Any, stop: Any, parent: int) -> None:
    """Run *tasks* on a connection of the group's; after a lost connection,
    on a new one.  When a server of several does not answer, the group's
    tenants left fail, one line each."""
    strategy = tasks.group.strategy
    entered = False

    def work() -> bool:
        nonlocal entered
        entered = True
        return _work(strategy, tasks, results, stop, parent)

    while True:
        entered = False
        try:
            if not strategy.on_connection(work) or not tasks.left():
                return
        except Exception as exc:
            server = tasks.group.server
            if entered or server is None:
                raise
            error = CommandError(
                f"server {server} cannot be reached: {first_line(exc)}"
            )
            while (name := tasks.take()) is not None:
                _failed(strategy, results, name, error, 0.0)
            return


# -- parent side ---------------------------------------------------------------
def run_parallel(strategy: TenantStrategy, workers: int) -> None:
    """Run the fleet in *workers* forked processes (see the module docstring)."""
    fleet = Fleet(strategy.run)

    def run() -> None:
        names = strategy.on_connection(lambda: choose(strategy))
        strategy.prepare_workers(names)
        _waves(fleet, strategy, names, workers)

    try:
        fleet.run_to_its_end(run)
    finally:  # the bar down, the log level back (before the summary)
        fleet.report.progress.close()


def _waves(
    fleet: Fleet, strategy: TenantStrategy, names: list[str], workers: int
) -> None:
    waves = fleet.waves.of(names)
    done = 0
    for wave in waves:
        check()
        fleet.waves.starts(wave, len(waves))
        failures = len(fleet.report.failures)
        supervisor = _Supervisor(fleet, done=done)
        todo = []
        for name in wave.names:  # at head by the batched read: no worker needed
            if strategy.at_head(name):
                supervisor.done += 1
                fleet.report.record(supervisor.done, name, None, 0.0)
            else:
                todo.append(name)
        groups, unreachable = groups_of(strategy, todo)
        for name in unreachable:  # their server did not answer
            supervisor.fail_unreachable(strategy, name)
        if groups and not supervisor.stop.is_set():
            cap = fleet.settings.server_workers or workers
            supervisor.run(groups, min(workers, len(todo) - len(unreachable)), cap)
        for name in sorted(supervisor.running):  # what became of them: read
            supervisor.done += 1
            fleet.stopped_on(supervisor.done, name, strategy.verify, 0.0)
        done = supervisor.done
        stopped = supervisor.interrupted or supervisor.stop.is_set()
        if not fleet.waves.done(wave, len(waves), failures, stopped):
            break


class _Supervisor:
    """The parent's side of a parallel run: starts the workers, logs what they
    report in completion order, stops them on a failure or a signal."""

    def __init__(self, fleet: Fleet, *, done: int = 0) -> None:
        self.report = fleet.report
        self.journal = fleet.journal
        settings = fleet.settings
        # a rollout wave may have max_failures failures: the wave goes on
        self.keep_going = settings.keep_going or (
            bool(settings.rollout) and settings.max_failures > 0
        )
        self.done = done
        self.interrupted = False
        self.exited = 0
        self.running: set[str] = set()
        """Tenants a worker started and has not reported (yet)."""
        self.pids: list[int] = []
        self.context = multiprocessing.get_context("fork")
        self.stop = self.context.Event()

    def run(self, groups: list[Group], count: int, cap: int) -> None:
        """Run *groups* in *count* worker processes, at most *cap* on one
        group (server) at a time."""
        total = sum(len(group.names) for group in groups)
        servers = f" on {len(groups)} servers" if len(groups) > 1 else ""
        log.info("Running %d tenants in %d worker processes%s", total, count, servers)
        tasks = [_Tasks(group, self.context, min(cap, count)) for group in groups]
        results = self.context.Queue()
        processes = [
            self.context.Process(
                target=_worker_main,
                args=(tasks, i % len(tasks), results, self.stop),
                name=f"alembic-recipes-worker-{i + 1}",
            )
            for i in range(count)
        ]
        with on_stop(self._forward):
            for process in processes:
                process.start()
                self.pids.append(int(process.pid or 0))
            if requested() is not None:  # before the last one started
                self._forward()
            self._collect(results, processes, count)
        for process in processes:
            process.join(timeout=30)
        if self.interrupted:
            self.report.interrupt(requested())

    def _forward(self) -> None:
        """A stop: SIGTERM to every worker -- each cancels its statement and
        ends (called in the signal handler: no locks taken here)."""
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass

    def fail_unreachable(self, strategy: TenantStrategy, name: str) -> None:
        """Tenant *name*'s server did not answer: its one-line failure."""
        try:
            strategy.one(name)  # raises the server's error at once
        except Exception as exc:
            self.done += 1
            self.report.record_failure(self.done, name, exc, 0.0)
            if not self.keep_going:
                self.stop.set()

    def _collect(self, results: Any, processes: list[Any], count: int) -> None:
        """Handle the workers' messages until they have all ended; after a
        stop, kill those still there :data:`_GRACE` seconds later."""
        deadline: float | None = None
        while self.exited < count:
            if deadline is None and requested() is not None:
                self.interrupted = True
                self.stop.set()
                deadline = time.monotonic() + _GRACE
            if deadline is not None and time.monotonic() > deadline:
                for process in processes:
                    if process.is_alive():
                        process.kill()
                return
            try:
                message = results.get(timeout=_POLL)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    return  # killed workers send nothing more
                continue
            self._handle(*message)

    def _handle(self, name: str, kind: str, payload: Any, seconds: float) -> None:
        report = self.report
        if kind == "started":
            self.running.add(name)
        elif kind == "exit":
            self.exited += 1
        elif kind == "worker failed":
            self.stop.set()
            log.error("A worker process failed:\n%s", payload.text)
            report.record_worker_error(payload.exception_object())
        elif isinstance(payload, _Failure):
            self.running.discard(name)
            self.done += 1
            exc = payload.exception_object()
            self.journal.written_by_workers.add(name)  # the worker wrote its row
            report.record_failure(self.done, name, exc, seconds, text=payload.text)
            if not self.keep_going:
                self.stop.set()
        else:
            self.running.discard(name)
            self.done += 1
            report.record(self.done, name, payload, seconds)
