"""A tenant left half-migrated: its revision failed after part of it committed.

MySQL and MariaDB commit each DDL statement as it runs (and what ran before
it in the transaction); PostgreSQL's ``autocommit_block()`` commits too.  A
revision that fails after such a commit cannot be rolled back whole: run
again, it fails differently each time (the column it added is there) and
repeats its data statements.  So, meanwhile (:func:`watching`), the
statements that committed in the running revision are kept, and a failure
after one is :class:`NeedsRepair` -- the revision, the last statement that
committed, the cause -- which is never retried, not even after a lock
timeout.  (A ``CREATE INDEX CONCURRENTLY`` that fails leaves an INVALID
index, which the next run builds again: that alone needs no repair.)

Where DDL commits as it runs (MySQL, MariaDB), a fleet also records each
revision's start (``running``) before it runs, so a run killed in the middle
of one leaves a row that says so; a later run that finds the tenant's version
still before that revision stops on it with the same diagnosis
(:meth:`~.journal.Journal.check_repair`) instead of running it again.

To repair: finish or undo that revision's statements by hand, then either
``alembic -x tenant=NAME stamp REVISION`` (finished) or ``alembic -x
tenant=NAME upgrade head`` (undone: a run of one named tenant runs it again,
as stock Alembic would).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection

from ...alembic_internals import announcing_steps
from ...database.errors import first_line
from .record import NEEDS_REPAIR

__all__ = ["NeedsRepair", "commits_ddl", "watching"]

_DDL = re.compile(r"\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)
_READ = re.compile(r"\s*(SELECT|SHOW|SET|DESCRIBE|EXPLAIN)\b", re.IGNORECASE)


class NeedsRepair(CommandError):
    """Tenant :attr:`tenant`'s revision :attr:`revision` committed in part."""

    status = NEEDS_REPAIR
    show_cause = True
    """Logged with the failure that caused it (traceback, SQL)."""

    def __init__(self, tenant: str, revision: str, message: str) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.revision = revision

    @classmethod
    def of(cls, tenant: str, revision: str, committed: str, cause: str) -> NeedsRepair:
        """The diagnosis: *committed* (the last statement that committed)
        before *cause* (the failure's one line)."""
        return cls(
            tenant,
            revision,
            f"{tenant}: needs repair: revision {revision} failed after part of it"
            f" had committed (last: {_short(committed)!r}); cause: {cause}."
            f" Finish or undo {revision}'s statements by hand, then `alembic -x"
            f" tenant={tenant} stamp {revision}` (finished) or `alembic -x"
            f" tenant={tenant} upgrade head` (undone)",
        )

    @classmethod
    def killed(cls, tenant: str, revision: str) -> NeedsRepair:
        """A run stopped (killed) inside *revision*, which commits as it runs."""
        return cls(
            tenant,
            revision,
            f"{tenant}: needs repair: a run was stopped inside revision {revision},"
            " whose DDL commits as it runs (MySQL/MariaDB): part of it may be"
            f" applied. Finish or undo {revision}'s statements by hand, then"
            f" `alembic -x tenant={tenant} stamp {revision}` (finished) or"
            f" `alembic -x tenant={tenant} upgrade head` (undone)",
        )


def _short(statement: str, limit: int = 120) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def commits_ddl(connection: Connection) -> bool:
    """True where each DDL statement commits as it runs (MySQL, MariaDB)."""
    return connection.dialect.name in ("mysql", "mariadb")


class _Watch:
    """The revision running on one connection, and what of it committed."""

    def __init__(
        self, connection: Connection, on_revision: Callable[[str], None] | None
    ) -> None:
        self.commits_ddl = commits_ddl(connection)
        self.on_revision = on_revision
        self.revision: str | None = None
        self.pending: list[str] = []
        """Statements of the revision not committed yet."""
        self.committed: list[str] = []

    def step(self, revision: str) -> None:
        self.revision = revision
        self.pending, self.committed = [], []
        if self.on_revision is not None:
            self.on_revision(revision)

    def before(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if self.commits_ddl and _DDL.match(statement):  # commits what ran before it
            self.committed += self.pending
            self.pending = []

    def after(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if _READ.match(statement):
            return
        autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        if autocommit or (self.commits_ddl and _DDL.match(statement)):
            self.committed.append(statement)
        else:
            self.pending.append(statement)

    def commit(self, conn: Connection) -> None:
        self.committed += self.pending
        self.pending = []


@contextmanager
def watching(
    connection: Connection,
    tenant: str,
    on_revision: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Meanwhile the revision migrating *tenant* on *connection* is followed
    (``on_revision(id)`` before each), and a failure after part of it
    committed is raised as :class:`NeedsRepair` (from the failure)."""
    watch = _Watch(connection, on_revision)
    listeners: list[tuple[str, Callable[..., Any]]] = [
        ("before_cursor_execute", watch.before),
        ("after_cursor_execute", watch.after),
        ("commit", watch.commit),
    ]
    for name, fn in listeners:
        event.listen(connection, name, fn)
    try:
        with announcing_steps(watch.step):
            yield
    except Exception as exc:
        if (
            watch.revision is None
            or not watch.committed
            or isinstance(exc, NeedsRepair)
        ):
            raise
        cause = f"{type(exc).__name__}: {first_line(exc)}"
        raise NeedsRepair.of(
            tenant, watch.revision, watch.committed[-1], cause
        ) from exc
    finally:
        for name, fn in listeners:
            event.remove(connection, name, fn)
