"""Parallel fleets: ``-x workers=N`` / ``fleet_workers = N`` worker processes.

Alembic's ``context`` and ``op`` are module globals, so tenants run in
parallel in processes, not threads.  The parent reads the fleet once (which
tenants, who is at head), then forks N workers; each opens its own
connection(s) and takes tenants from one shared queue, so a slow tenant does
not hold back the others' share.  Every tenant still runs under its own lock,
in its own transaction.  The parent logs the per-tenant lines in completion
order (``[k/n]``) and the one summary.

Stop at the first failure (the default): no worker starts another tenant; those
in flight finish their transaction.  ``continue=true`` goes on.  Ctrl-C or
SIGTERM: the workers finish or roll back the tenant they are on, take no more,
and the summary says what was not attempted.  Where forking is not safe (no
``fork`` on the platform, other threads running, a connection shared by the
caller), the fleet runs in this process, one tenant after the other, and says so.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ..connections import connect_and_run
from .config import Tenant
from .databases import DatabaseTenants
from .fleet import Fleet, Outcome
from .schemas import SchemaTenants

__all__ = ["can_fork", "run_parallel"]

log = logging.getLogger("alembic.recipes.tenants")

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
def _work(
    one: Callable[[str], Outcome],
    tasks: Any,
    results: Any,
    stop: Any,
) -> None:
    """Take tenants from *tasks* until it is empty or *stop* is set."""
    while not stop.is_set():
        name = tasks.get()
        if name is None:  # one sentinel per worker: the queue is done
            return
        started = time.perf_counter()
        try:
            outcome: Outcome | _Failure = one(name)
        except KeyboardInterrupt:  # rolled back on the way out
            results.put((name, "interrupted", None, time.perf_counter() - started))
            return
        except Exception as exc:
            outcome = _Failure.of(exc)
        results.put((name, "done", outcome, time.perf_counter() - started))


def _worker_main(
    fleet: Fleet,
    tenants: SchemaTenants | DatabaseTenants,
    tasks: Any,
    results: Any,
    stop: Any,
) -> None:
    """A forked worker: its own connection, tenants from the shared queue."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        if isinstance(tenants, SchemaTenants):
            schemas = tenants

            def on_own_connection(conn: Connection) -> None:
                _work(lambda name: schemas.one(conn, name), tasks, results, stop)

            connect_and_run(fleet.settings, on_own_connection, lock=False)
        else:
            _work(tenants.one, tasks, results, stop)
    except BaseException as exc:  # cannot even connect: the parent reports it
        failure = _Failure.of(exc if isinstance(exc, Exception) else RuntimeError(exc))
        results.put(("", "worker failed", failure, 0.0))
    finally:
        results.put(("", "exit", None, 0.0))


# -- parent side ---------------------------------------------------------------
@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM in the parent behaves like Ctrl-C (KeyboardInterrupt)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_parallel(
    fleet: Fleet,
    migrate: Callable[[Connection, Tenant], None],
    workers: int,
) -> None:
    """Run the fleet in *workers* forked processes (see the module docstring)."""
    settings = fleet.settings
    tenants: SchemaTenants | DatabaseTenants
    if settings.strategy == "schema":
        tenants = SchemaTenants(fleet, migrate)
        schema_tenants = tenants
        names = connect_and_run(settings, schema_tenants.select, lock=False)
    else:
        tenants = DatabaseTenants(fleet, migrate)
        names = tenants.select()
        fleet.load_listed(None, names)
    context = multiprocessing.get_context("fork")
    tasks, results, stop = context.Queue(), context.Queue(), context.Event()
    done = 0
    todo = []
    for name in names:  # at head by the batched read: no worker needed
        if tenants.at_head(name):
            done += 1
            fleet.record(done, name, None, 0.0)
        else:
            todo.append(name)
    if not todo:
        return
    count = min(workers, len(todo))
    log.info("Running %d tenants in %d worker processes", len(todo), count)
    processes = [
        context.Process(
            target=_worker_main,
            args=(fleet, tenants, tasks, results, stop),
            name=f"alembic-recipes-worker-{i}",
        )
        for i in range(1, count + 1)
    ]
    for process in processes:
        process.start()
    # queued after the fork: the queue's feeder thread must not exist before it
    for task in [*todo, *[None] * count]:
        tasks.put(task)
    interrupted = False
    exited = 0
    with _sigterm_interrupts():
        while exited < count:
            try:
                name, kind, payload, seconds = results.get(timeout=_POLL)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    break  # killed workers send nothing more
                continue
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                continue
            if kind == "exit":
                exited += 1
            elif kind == "worker failed":
                stop.set()
                log.error("A worker process failed:\n%s", payload.text)
                fleet.worker_errors.append(payload.exception_object())
            elif kind == "interrupted":
                interrupted = True
                stop.set()
                fleet.interrupted.append(name)
            else:
                done += 1
                if isinstance(payload, _Failure):
                    exc = payload.exception_object()
                    fleet.record_failure(done, name, exc, seconds, text=payload.text)
                    if not settings.keep_going:
                        stop.set()
                else:
                    fleet.record(done, name, payload, seconds)
    for process in processes:
        process.join(timeout=30)
    fleet.was_interrupted = interrupted
