"""Stopping a run on SIGTERM or Ctrl-C: within seconds, cleanly, saying so.

Kubernetes stops a pod with SIGTERM, then SIGKILL after the grace period (30 s
by default); an operator presses Ctrl-C.  While :func:`stop_on_signals` is in
force (a fleet run, in the main thread), the first SIGTERM or SIGINT:

* asks the run to stop: no tenant starts after it, no lock wait or retry
  pause goes on (:func:`check`, :func:`pause`), and no statement of a
  migration that is :func:`guarded` starts;
* cancels the statements this process runs on its servers
  (:mod:`.cancelling`), so the running tenant fails at once and rolls back,
  instead of waiting out a lock (``lock_timeout = 0`` included);
* if the run has not unwound 4 seconds later (Python code in a revision,
  which no cancel reaches), raises ``KeyboardInterrupt`` in the main thread
  -- a second signal does so at once;
* 9 seconds after the signal, exits whatever it is doing.

Nothing is raised at a random point by the first signal, so the run's own
bookkeeping -- the tenant's rollback, its record, its line, the summary --
is never cut in half.  The run then ends with :class:`Interrupted` (a
``CommandError``: Alembic prints ``FAILED:``), and the process exits with
the signal's own status, as a process it had killed would: 143 after
SIGTERM, 130 after Ctrl-C.

A forked worker process (:func:`as_worker`) leaves SIGINT to its parent; a
SIGTERM -- from the parent stopping, or because the parent died -- cancels
its running statement and ends it at once (the parent learns from the
database what became of its tenant).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.util.concurrency import await_only, in_greenlet

from ..logs import logger_for
from .cancelling import cancel_running

__all__ = [
    "Interrupted",
    "as_worker",
    "check",
    "finishing",
    "guarded",
    "on_stop",
    "parent_is_gone",
    "pause",
    "requested",
    "signal_name",
    "stop_on_signals",
    "stopped_by",
]

log = logger_for(__name__)

ESCALATE_AFTER = 4.0
"""Seconds after the first signal before ``KeyboardInterrupt`` is raised."""
HARD_AFTER = 9.0
"""Seconds after the first signal before the process exits regardless."""
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_GUARD = "alembic_recipes.stop_guard"
_PR_SET_PDEATHSIG = 1


class Interrupted(CommandError):
    """The run stopped on a signal (:attr:`signum`)."""

    def __init__(self, message: str, signum: int | None = None) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class _State:
    signum: int | None = None
    """The signal that asked to stop (None: none yet)."""
    asked: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    finishing: bool = False
    """The run writes its record and summary: no ``KeyboardInterrupt`` now."""
    depth: int = 0
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    watchdog: threading.Thread | None = None
    """Says the stop and carries it out (:func:`_after_first`)."""


_state = _State()
_exit_signal: list[int] = []


def requested() -> int | None:
    """The signal that asked this process to stop, or None."""
    return _state.signum


def signal_name(signum: int | None = None) -> str:
    """``SIGTERM``, ``SIGINT (Ctrl-C)`` -- of *signum*, or of the stop asked."""
    number = signum if signum is not None else _state.signum
    if number is None:
        return "no signal"
    name = signal.Signals(number).name
    return f"{name} (Ctrl-C)" if number == signal.SIGINT else name


def check() -> None:
    """Raise :class:`Interrupted` once a stop was asked."""
    if _state.signum is not None:
        raise Interrupted(f"stopped by {signal_name()}", _state.signum)


def stopped_by(exc: BaseException) -> bool:
    """*exc* is how a stop showed: :class:`Interrupted`, ``KeyboardInterrupt``,
    or any error once a stop was asked (a cancelled statement, say)."""
    return isinstance(exc, Interrupted | KeyboardInterrupt) or _state.signum is not None


def pause(seconds: float) -> None:
    """Sleep *seconds*, or less when a stop is asked meanwhile (then raise
    :class:`Interrupted`).

    Inside an async driver's call -- SQLAlchemy's greenlet under
    ``run_sync()``, where an async engine's migration runs -- the sleep is
    awaited on the event loop below, so that an application's other tasks
    go on meanwhile (a stop is then seen within 0.1 s)."""
    if in_greenlet():
        end = time.monotonic() + max(0.0, seconds)
        while not _state.asked.is_set() and (left := end - time.monotonic()) > 0:
            await_only(asyncio.sleep(min(left, 0.1)))
    else:
        _state.asked.wait(max(0.0, seconds))
    check()


@contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Meanwhile *callback* is called (in the signal handler: keep it short,
    no locks) when a stop is asked."""
    _state.callbacks.append(callback)
    try:
        yield
    finally:
        _state.callbacks.remove(callback)


@contextmanager
def finishing() -> Iterator[None]:
    """The run's last part (its record, its summary): a second signal does
    not cut it short (the hard deadline still holds)."""
    previous, _state.finishing = _state.finishing, True
    try:
        yield
    finally:
        _state.finishing = previous


@contextmanager
def guarded(connection: Connection) -> Iterator[None]:
    """Meanwhile, once a stop is asked, every statement on *connection*
    raises :class:`Interrupted` instead of starting (a revision between two
    statements stops at the next one)."""
    engine = connection.engine
    if not event.contains(engine, "before_cursor_execute", _refuse):
        event.listen(engine, "before_cursor_execute", _refuse)
    info = connection.info  # (read from an invalidated connection, it raises)
    previous = info.get(_GUARD, False)
    info[_GUARD] = True
    try:
        yield
    finally:
        info[_GUARD] = previous


def _refuse(conn: Connection, *args: object) -> None:
    if _state.signum is not None and conn.info.get(_GUARD):
        raise Interrupted(
            f"stopped by {signal_name()} before this statement", _state.signum
        )


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Meanwhile SIGTERM and SIGINT stop the run as the module docstring
    says (main thread only; elsewhere nothing changes).  On the way out of
    the outermost one, a stop that was asked makes the process exit with
    the signal's status when it ended the run (:class:`Interrupted`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _state
    previous = {}
    if state.depth == 0:
        previous = {signum: signal.signal(signum, _handle) for signum in _SIGNALS}
    state.depth += 1
    stopped = False
    try:
        yield
    except (Interrupted, KeyboardInterrupt):
        stopped = True
        raise
    finally:
        state.depth -= 1
        if state.depth == 0:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            state.done.set()
            if state.watchdog is not None:  # its line written before we go on
                state.watchdog.join(timeout=5)
            if stopped and state.signum is not None and not _exit_signal:
                _exit_signal.append(state.signum)
                atexit.register(_exit_as_signalled)
            _reset()


def _reset() -> None:
    global _state
    _state = _State()


def _handle(signum: int, frame: FrameType | None) -> None:
    """The signal handler.  It writes nothing itself: it may have interrupted
    the main thread inside a write to the same stream, which a second write
    there would fail ("reentrant call"); its lines come from threads."""
    state = _state
    if state.signum is None:
        state.signum = signum
        state.asked.set()
        for callback in list(state.callbacks):
            callback()
        state.watchdog = threading.Thread(
            target=_after_first, args=(state,), daemon=True, name="stopping"
        )
        state.watchdog.start()
        return
    if state.finishing:
        threading.Thread(
            target=log.warning,
            args=("%s again: writing the summary", signal_name(signum)),
            daemon=True,
        ).start()
        return
    raise KeyboardInterrupt


def _after_first(state: _State) -> None:
    """Say the stop and cancel what runs; raise ``KeyboardInterrupt`` in the
    main thread if the run has not ended after :data:`ESCALATE_AFTER`
    seconds; exit at :data:`HARD_AFTER`."""
    log.warning(
        "%s: stopping; no tenant starts after this, the running statements"
        " are cancelled and their transactions roll back",
        signal_name(state.signum),
    )
    cancel_running()
    if state.done.wait(ESCALATE_AFTER):
        return
    if not state.finishing:
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGINT)
    if state.done.wait(HARD_AFTER - ESCALATE_AFTER):
        return
    log.error(
        "could not stop cleanly within %.0f s of %s: exiting now (open"
        " transactions roll back when their connections close)",
        HARD_AFTER,
        signal_name(state.signum),
    )
    _flush()
    os._exit(128 + (state.signum or signal.SIGTERM))


def _flush() -> None:
    for handler in logging.getLogger().handlers + logging.getLogger("alembic").handlers:
        try:
            handler.flush()
        except Exception:  # pragma: no cover - a handler that cannot
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pragma: no cover - closed
            pass


def _exit_as_signalled() -> None:
    """At exit after a stop: end the process by the signal itself, so its
    status says interrupted (143, 130) rather than failed."""
    signum = _exit_signal[0]
    _flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# -- worker processes ------------------------------------------------------------
def as_worker() -> int:
    """In a forked worker: SIGINT is the parent's to handle (Ctrl-C reaches
    the whole process group), SIGTERM cancels the running statement and ends
    the worker, and the parent's death sends SIGTERM (Linux:
    ``PR_SET_PDEATHSIG``; elsewhere :func:`parent_is_gone` is checked between
    tenants).  Returns the parent's pid."""
    parent = os.getppid()
    _reset()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    if os.getppid() != parent:  # died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return parent


def _in_child() -> None:
    """Right after a fork while a stop is watched (a worker starting): Ctrl-C
    is the parent's to handle, from the child's first instruction on -- the
    whole process group gets it, and the parent's stop state, copied into the
    child, would make the inherited handler raise ``KeyboardInterrupt`` in
    the middle of the child's start-up.  :func:`as_worker` then sets the
    worker's own handling."""
    if signal.getsignal(signal.SIGINT) is _handle:
        with contextlib.suppress(ValueError):  # forked off the main thread
            signal.signal(signal.SIGINT, signal.SIG_IGN)


os.register_at_fork(after_in_child=_in_child)


def _worker_stop(signum: int, frame: FrameType | None) -> None:
    cancel_running(timeout=1.0)
    _flush()
    os._exit(128 + signum)


def parent_is_gone(parent: int) -> bool:
    """True when the worker's parent *parent* has died (it was re-parented)."""
    return os.getppid() != parent
