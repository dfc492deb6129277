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
in flight finish their transaction.  ``continue=true`` goes on.  Ctrl-C or
SIGTERM: the workers finish or roll back the tenant they are on, take no more,
and the summary says what was not attempted.  Where forking is not safe (no
``fork`` on the platform, other threads running, a connection shared by the
caller), the fleet runs in this process, one tenant after the other, and says so.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from alembic.util import CommandError

from ..connections import connection_lost, first_line
from ..logs import logger_for
from ..retries import with_lock_retries
from .config import TenantSettings
from .fleet import Fleet
from .interface import TenantStrategy
from .interrupts import exit_with_parent, parent_is_gone, sigterm_interrupts
from .report import Outcome, Report
from .servers import Group, groups_of

__all__ = ["can_fork", "run_parallel"]

log = logger_for(__name__)

_POLL = 0.1


def can_fork(fleet: Fleet) -> str | None:
    """Why this fleet cannot run in worker processes, or None when it can."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork"
    if threading.active_count() > 1:
        return "other threads are running in this process"
    if fleet.config.attributes.get("connection") is not None:
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
    one: Callable[[str], Outcome],
    tasks: _Tasks,
    results: Any,
    stop: Any,
    retries: int,
    parent: int,
) -> bool:
    """Take tenants from *tasks* until none is left or *stop* is set; a lock
    timeout runs the tenant again in place (the other workers go on).  True
    when a tenant lost the connection: the caller opens a new one."""
    while not stop.is_set() and not parent_is_gone(parent):
        name = tasks.take()
        if name is None:
            return False
        started = time.perf_counter()
        try:
            outcome: Outcome | _Failure = with_lock_retries(
                partial(one, name), retries, name
            )
        except KeyboardInterrupt:  # rolled back on the way out
            results.put((name, "interrupted", None, time.perf_counter() - started))
            return False
        except Exception as exc:
            lost = connection_lost(exc)
            outcome = _Failure.of(
                exc if lost is None else CommandError(f"{name}: {lost}")
            )
            if lost is not None:
                results.put((name, "done", outcome, time.perf_counter() - started))
                return True
        results.put((name, "done", outcome, time.perf_counter() - started))
    return False


def _worker_main(groups: list[_Tasks], first: int, results: Any, stop: Any) -> None:
    """A forked worker: its own connection, tenants from the shared list;
    it ends when the parent dies, whatever killed it.  With several servers
    it takes them in turn from *first*, on those with a free slot."""
    parent = exit_with_parent()
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
    retries = strategy.fleet.settings.lock_retries
    entered = False

    def work() -> bool:
        nonlocal entered
        entered = True
        return _work(strategy.one, tasks, results, stop, retries, parent)

    while True:
        entered = False
        try:
            if not strategy.on_connection(work) or not tasks.left():
                return
        except Exception as exc:
            server = tasks.group.server
            if entered or server is None:
                raise
            failure = _Failure.of(
                CommandError(f"server {server} cannot be reached: {first_line(exc)}")
            )
            while (name := tasks.take()) is not None:
                results.put((name, "done", failure, 0.0))
            return


# -- parent side ---------------------------------------------------------------
def run_parallel(strategy: TenantStrategy, workers: int) -> None:
    """Run the fleet in *workers* forked processes (see the module docstring)."""
    try:
        _run_parallel(strategy, workers)
    finally:  # the bar down, the log level back (before the summary)
        strategy.fleet.report.progress.close()


def _run_parallel(strategy: TenantStrategy, workers: int) -> None:
    fleet = strategy.fleet
    names = strategy.on_connection(strategy.select)
    strategy.prepare_workers(names)
    waves = fleet.waves(names)
    done = 0
    for wave in waves:
        fleet.wave_starts(wave, len(waves))
        failures = len(fleet.report.failures)
        supervisor = _Supervisor(fleet.report, fleet.settings, done=done)
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
        done = supervisor.done
        stopped = supervisor.interrupted or supervisor.stop.is_set()
        if not fleet.wave_done(wave, len(waves), failures, stopped):
            break
    strategy.on_connection(strategy.save_record)


class _Supervisor:
    """The parent's side of a parallel run: starts the workers, logs what they
    report in completion order, stops them on a failure or a signal."""

    def __init__(
        self, report: Report, settings: TenantSettings, *, done: int = 0
    ) -> None:
        self.report = report
        # a rollout wave may have max_failures failures: the wave goes on
        self.keep_going = settings.keep_going or (
            bool(settings.rollout) and settings.max_failures > 0
        )
        self.done = done
        self.interrupted = False
        self.exited = 0
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
        for process in processes:
            process.start()
        with sigterm_interrupts():
            self._collect(results, processes, count)
        for process in processes:
            process.join(timeout=30)
        if self.interrupted:
            self.report.interrupt()

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
        while self.exited < count:
            try:
                message = results.get(timeout=_POLL)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    return  # killed workers send nothing more
                continue
            except KeyboardInterrupt:
                self.interrupted = True
                self.stop.set()
                continue
            self._handle(*message)

    def _handle(self, name: str, kind: str, payload: Any, seconds: float) -> None:
        report = self.report
        if kind == "exit":
            self.exited += 1
        elif kind == "worker failed":
            self.stop.set()
            log.error("A worker process failed:\n%s", payload.text)
            report.record_worker_error(payload.exception_object())
        elif kind == "interrupted":
            self.interrupted = True
            self.stop.set()
            report.record_interrupted(name)
        elif isinstance(payload, _Failure):
            self.done += 1
            exc = payload.exception_object()
            report.record_failure(self.done, name, exc, seconds, text=payload.text)
            if not self.keep_going:
                self.stop.set()
        else:
            self.done += 1
            report.record(self.done, name, payload, seconds)
