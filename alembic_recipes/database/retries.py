"""Running again after a lock timeout, with growing pauses and jitter.

A lock timeout (``lock_timeout``) means another session held what a
statement needed; its transaction was rolled back whole, so running it again
is safe wherever DDL is transactional.  ``lock_retries`` (default 3) runs
again after 0.5 s, 1 s, 2 s ... (capped at 10 s, each between half and one
and a half of that, so replicas do not retry in step); then the run fails with
one line naming the statement and who held the lock (:class:`LockTimeout`),
chained to the driver's error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from alembic.util import CommandError
from sqlalchemy.engine import Connection

from ..logs import logger_for
from .blocking import Timeout, timeout_of
from .engines import transactional_ddl
from .stopping import check, pause

__all__ = [
    "LockTimeout",
    "backoff",
    "lock_timeout_of",
    "why_not_retry",
    "with_lock_retries",
]

log = logger_for(__name__)
T = TypeVar("T")


class LockTimeout(CommandError):
    """Gave up after lock timeouts: names what, the statement and the holder."""

    def __init__(
        self, what: str, timeout: Timeout, attempts: int, *, why_not: str = ""
    ) -> None:
        self.timeout = timeout
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        ended = (
            f"not run again: {why_not}"
            if why_not
            else f"rolled back, gave up after {tries} (lock_timeout, lock_retries)"
        )
        super().__init__(f"{what}: {timeout.describe()}; {ended}")


def lock_timeout_of(exc: BaseException) -> Timeout | None:
    """The lock timeout that ended *exc*, if one did (statement timeouts are
    not retried: running again would take as long)."""
    found = timeout_of(exc)
    return found if found is not None and found.kind == "lock" else None


def why_not_retry(connection: Connection) -> str:
    """Why a failed run on *connection* may have left something behind, so
    that running it again is not safe; "" when it is: no caller's open
    transaction, DDL inside the transaction (PostgreSQL, SQLite made
    transactional; not MySQL/MariaDB, whose DDL commits as it runs)."""
    if connection.in_transaction():
        return "it ran inside the caller's open transaction"
    if connection.dialect.name == "postgresql" or transactional_ddl(connection):
        return ""
    return f"DDL on {connection.dialect.name} commits as it runs"


def backoff(attempt: int) -> float:
    """Seconds to pause before retry *attempt* (1, 2, ...), with jitter."""
    base: float = min(10.0, 0.5 * 2.0 ** (attempt - 1))
    return base * random.uniform(0.5, 1.5)


def with_lock_retries(
    fn: Callable[[], T], retries: int, what: str, *, why_not: str = ""
) -> T:
    """``fn()``, run again up to *retries* times after a lock timeout; then
    :class:`LockTimeout`.  *what* names the database or tenant in the log;
    *why_not*: why a run cannot be repeated here (then it is not)."""
    attempt = 0
    while True:
        check()  # a stop: no (further) attempt
        try:
            return fn()
        except Exception as exc:
            timeout = lock_timeout_of(exc)
            if timeout is None or isinstance(exc, CommandError):
                raise  # ours (a LockTimeout, a repair to make) is final
            if why_not or attempt >= retries:
                raise LockTimeout(what, timeout, attempt + 1, why_not=why_not) from exc
            attempt += 1
            seconds = backoff(attempt)
            log.warning(
                "%s: %s; rolled back, retry %d of %d in %.1f s",
                what,
                timeout.describe(),
                attempt,
                retries,
                seconds,
            )
            pause(seconds)
