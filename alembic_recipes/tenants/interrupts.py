"""Stopping a fleet: SIGTERM (Kubernetes stopping a pod) as Ctrl-C, and
workers that do not outlive their parent.

SIGTERM raises ``KeyboardInterrupt`` in the fleet's process, as Ctrl-C does:
the tenant running rolls back (psycopg cancels a statement waiting on the
server), the rest is not attempted, the summary says so and the command exits
non-zero.  A worker process ends when its parent dies, even by SIGKILL
(Linux: ``PR_SET_PDEATHSIG``; elsewhere it checks before each tenant), so no
tenant is migrated unsupervised: its open transaction is never committed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..logs import logger_for

__all__ = ["exit_with_parent", "parent_is_gone", "sigterm_interrupts", "stopping"]

log = logger_for(__name__)
_PR_SET_PDEATHSIG = 1
_received: list[int] = []


def stopping() -> bool:
    """True once SIGTERM arrived: an error that follows is the interruption's
    (a driver may turn it into a "connection invalidated" of its own), so it
    is not retried, not replayed otherwise, and not counted as a failure."""
    return bool(_received)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Meanwhile, the first SIGTERM raises ``KeyboardInterrupt`` (later ones
    are logged and ignored, so clean-up is not interrupted in turn)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        if _received:
            log.warning("SIGTERM again: still rolling back")
            return
        _received.append(signum)
        log.warning("SIGTERM: stopping; the running tenant rolls back")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _received.clear()


def exit_with_parent() -> int:
    """In a worker: be terminated (SIGTERM, default action) when the parent
    dies; returns the parent's pid for :func:`parent_is_gone`."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    if os.getppid() != parent:  # died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return parent


def parent_is_gone(parent: int) -> bool:
    """True when the worker's parent *parent* has died (it was re-parented)."""
    return os.getppid() != parent
