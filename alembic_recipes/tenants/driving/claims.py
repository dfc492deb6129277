"""The claims of a shared fleet run (``-x shard=claim``): who migrates which tenant.

Runner processes started with the same run id (``-x run=ID``) share one run.
The table ``alembic_recipes_fleet_claim`` lives beside the run record
(:func:`~.record.record_location`) and holds one row per tenant of the run:
its position and rollout wave, its state (``open``, ``claimed``, ``done``),
the runner holding it and until when (its lease), and its outcome.

A runner claims the next open tenant of the lowest unfinished wave -- or one
whose runner let its lease run out (it died) -- with ``SELECT ... FOR UPDATE
SKIP LOCKED`` (PostgreSQL, MySQL 8, MariaDB 10.6), or under a lock file
beside a SQLite record; renews its lease while it works; and marks the tenant
done.  The tenant's own migration lock, and its version read again under it,
keep a tenant that two runners reach (a lease that ran out under a slow
tenant) from being migrated twice.

Every statement here runs on a connection of its own (:class:`Claims` owns a
small sync engine), never on a tenant's.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from sqlalchemy import create_engine, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from ...database.locks import table_lock
from ...logs import logger_for
from ..records.claim_table import (
    CLAIM_TABLE,
    CLAIMED,
    DONE,
    OPEN,
    claim_statement,
    claim_table,
    clock,
    ending,
    failed_in,
    joining_rows,
    next_free,
    opening_rows,
    skip_from,
    summarize,
    sync_url,
    wave_count,
    wave_spec,
)

__all__ = ["Claim", "Claims", "Joined"]

log = logger_for(__name__)

_KEEP_RUNS = 10
"""Finished runs whose claims are kept (a late runner of one is told so)."""
_LOCK_WAIT = 60.0


@dataclass(frozen=True)
class Claim:
    """A tenant this runner holds: its position in the run, its wave, and
    the runner it was taken over from (a lease that ran out), if any."""

    tenant: str
    position: int
    wave: int
    taken_from: str | None = None


@dataclass(frozen=True)
class Joined:
    """What a runner found when it joined run *run_id*."""

    opened: bool
    """This runner opened the run (its tenants were written now)."""
    finished: bool
    """Every tenant of the run was done before this runner came."""
    total: int
    added: tuple[str, ...] = ()
    """Tenants this runner added to the run (all of them, when it opened it)."""


class Claims:
    """The claims of run *run_id* in the database at *url* (table in *schema*)."""

    def __init__(
        self, url: str, schema: str | None, run_id: str, *, lease: float
    ) -> None:
        self.run_id = run_id
        self.lease = lease
        self.runner = f"{socket.gethostname()}:{os.getpid()}"
        self.table = claim_table(schema)
        self.schema = schema
        url = sync_url(url)
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        options: dict[str, object] = {}
        if self.sqlite:
            options["poolclass"] = NullPool
        else:  # two kept open: this runner's and its lease thread's
            options.update(pool_size=2, max_overflow=2, isolation_level="AUTOCOMMIT")
        self.engine: Engine = create_engine(url, **options)
        self.postgresql = self.engine.dialect.name == "postgresql"
        self._file_lock: FileLock | None = None
        if self.sqlite:  # the record's file, beside the tenants' (made first)
            path = Path(parsed.database or CLAIM_TABLE).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file_lock = FileLock(f"{path}.claims.lock")
        self._held: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- transactions ----------------------------------------------------------
    @contextmanager
    def _transaction(self, *, exclusive: bool = False) -> Iterator[Connection]:
        """A short transaction of its own; *exclusive*: runs that open or
        add to the run take turns (the table lock; SQLite: the lock file,
        which every claim takes too), the table made first if missing."""
        with self.engine.connect() as conn:
            if self._file_lock is not None:
                with self._file_lock.acquire(timeout=_LOCK_WAIT), conn.begin():
                    if exclusive:
                        self._ensure(conn)
                    yield conn
                return
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                if exclusive:
                    with table_lock(conn, self.schema, CLAIM_TABLE, timeout=_LOCK_WAIT):
                        self._ensure(conn)
                        yield conn
                    return
                yield conn

    def _ensure(self, conn: Connection) -> None:
        if not conn.dialect.has_table(conn, CLAIM_TABLE, self.schema):
            self.table.create(conn)

    # -- joining ---------------------------------------------------------------
    def join(
        self,
        waves: Sequence[tuple[int, str, Sequence[str]]],
        write_record: Callable[[Sequence[str]], None],
    ) -> Joined:
        """Open the run with the tenants of *waves* (``(number, spec,
        names)``), or join it as it is; *write_record(names)* records the
        intent of the tenants this runner adds, before any runner can claim
        them."""
        t = self.table
        with self._transaction(exclusive=True) as conn:
            rows = conn.execute(
                select(t.c.tenant, t.c.state).where(t.c.run_id == self.run_id)
            ).all()
            names = [name for _, _, group in waves for name in group]
            if rows:
                if all(state == DONE for _, state in rows):
                    return Joined(False, True, len(rows))
                have = {tenant for tenant, _ in rows}
                new = [name for name in names if name not in have]
                self._append(conn, new, write_record)
                return Joined(False, False, len(rows) + len(new), tuple(new))
            write_record(names)
            self._forget_old_runs(conn)
            values = opening_rows(self.run_id, waves, self._now(conn))
            if values:
                conn.execute(insert(t), values)
            return Joined(True, False, len(values), tuple(names))

    def add(
        self, names: Sequence[str], write_record: Callable[[Sequence[str]], None]
    ) -> list[str]:
        """Add *names* that joined the catalog meanwhile (those not in the
        run yet) to its last wave; the ones added."""
        t = self.table
        with self._transaction(exclusive=True) as conn:
            have = set(
                conn.scalars(select(t.c.tenant).where(t.c.run_id == self.run_id))
            )
            new = [name for name in names if name not in have]
            self._append(conn, new, write_record)
            return new

    def _append(
        self,
        conn: Connection,
        new: Sequence[str],
        write_record: Callable[[Sequence[str]], None],
    ) -> None:
        """*new* tenants join the run's last wave (inside the exclusive
        transaction), their intent recorded first."""
        if not new:
            return
        t = self.table
        last = conn.execute(
            select(func.max(t.c.position), func.max(t.c.wave)).where(
                t.c.run_id == self.run_id
            )
        ).one()
        write_record(new)
        now = self._now(conn)
        rows = joining_rows(self.run_id, new, last[0] or 0, last[1] or 1, now)
        conn.execute(insert(t), rows)

    @staticmethod
    def _now(conn: Connection) -> float:
        """Now on the database's clock (:func:`~.claim_table.clock`)."""
        return float(conn.scalar(select(clock(conn.dialect))) or 0)

    def _forget_old_runs(self, conn: Connection) -> None:
        """Keep the claims of the last few runs only."""
        t = self.table
        recent = (
            select(t.c.run_id)
            .group_by(t.c.run_id)
            .order_by(func.max(t.c.updated).desc())
            .limit(_KEEP_RUNS)
        )
        kept = list(conn.scalars(recent))
        if len(kept) >= _KEEP_RUNS:
            conn.execute(delete(t).where(t.c.run_id.not_in(kept)))

    # -- claiming --------------------------------------------------------------
    def next_wave(self) -> int | None:
        """The lowest wave with a tenant not done (None: the run is done)."""
        t = self.table
        with self._transaction() as conn:
            wave = conn.scalar(
                select(func.min(t.c.wave)).where(
                    t.c.run_id == self.run_id, t.c.state != DONE
                )
            )
        return None if wave is None else int(wave)

    def claim(self, finished: tuple[str, str] | None = None) -> Claim | None:
        """Mark *finished* -- ``(tenant, status)``, this runner's last --
        done, then take the next tenant of the lowest unfinished wave, or one
        whose runner's lease ran out; None when there is none to take now
        (:meth:`next_wave` tells a finished run from one to wait for).  On
        PostgreSQL both in one statement: one round trip per tenant."""
        if self.postgresql:
            row = self._claim_pg(finished)
        else:
            row = self._claim_in_transaction(finished)
        if row is None:
            return None
        tenant, position, wave, state, runner = row
        with self._guard:
            self._held.add(tenant)
        return Claim(tenant, position, wave, runner if state == CLAIMED else None)

    def _claim_pg(
        self, finished: tuple[str, str] | None
    ) -> tuple[str, int, int, str, str | None] | None:
        prev, status = finished or ("", None)
        with self._guard:
            self._held.discard(prev)
        with self.engine.connect() as conn:
            row = conn.execute(
                claim_statement(self.schema, self.engine.dialect),
                {
                    "run": self.run_id,
                    "me": self.runner,
                    "prev": prev,
                    "status": status,
                    "lease": self.lease,
                },
            ).first()
        return None if row is None else tuple(row)

    def _claim_in_transaction(
        self, finished: tuple[str, str] | None
    ) -> tuple[str, int, int, str, str | None] | None:
        t = self.table
        with self._transaction() as conn:
            now = clock(conn.dialect)
            if finished is not None:
                self._end_on(conn, finished[0], DONE, finished[1])
            query = next_free(t, self.run_id, now, lock=not self.sqlite)
            row = conn.execute(query).first()
            if row is None:
                return None
            conn.execute(
                update(t)
                .where(t.c.run_id == self.run_id, t.c.tenant == row.tenant)
                .values(
                    state=CLAIMED,
                    runner=self.runner,
                    lease_until=now + self.lease,
                    updated=now,
                )
            )
        return tuple(row)

    def done(self, name: str, status: str) -> bool:
        """Tenant *name* is done (*status*); False when this runner no longer
        held it (its lease ran out and another runner took it over)."""
        return self._end(name, DONE, status)

    def release(self, name: str) -> None:
        """Give tenant *name* back, not done (this runner stops): another
        runner takes it at once, not after the lease."""
        self._end(name, OPEN, None)

    def _end(self, name: str, state: str, status: str | None) -> bool:
        with self._transaction() as conn:
            return self._end_on(conn, name, state, status)

    def _end_on(
        self, conn: Connection, name: str, state: str, status: str | None
    ) -> bool:
        with self._guard:
            self._held.discard(name)
        statement = ending(
            self.table,
            self.run_id,
            name,
            self.runner,
            state,
            status,
            clock(conn.dialect),
        )
        done = conn.execute(statement)
        return bool(done.rowcount)

    # -- waves -----------------------------------------------------------------
    def failed_in(self, wave: int, failed: Sequence[str]) -> int:
        """How many tenants of *wave* ended in one of the *failed* statuses."""
        with self._transaction() as conn:
            return failed_in(conn, self.table, self.run_id, wave, failed)

    def skip_from(self, wave: int, status: str) -> list[str]:
        """The tenants of *wave* and later not taken yet are done with
        *status* (an earlier wave failed); their names."""
        with self._transaction() as conn:
            return skip_from(conn, self.table, self.run_id, wave, status)

    def wave_spec(self, wave: int) -> str:
        """How the rollout wrote wave *wave* (``10%``; ``rest``)."""
        with self._transaction() as conn:
            return wave_spec(conn, self.table, self.run_id, wave)

    def waves(self) -> int:
        """How many rollout waves the run has."""
        with self._transaction() as conn:
            return wave_count(conn, self.table, self.run_id)

    # -- the run as a whole ----------------------------------------------------
    def summary(self) -> tuple[Counter[str], int, int]:
        """The run's outcomes so far (status: count, over every runner), how
        many tenants are not done, and how many runners took part."""
        t = self.table
        with self._transaction() as conn:
            rows = conn.execute(
                select(t.c.state, t.c.status, t.c.runner).where(
                    t.c.run_id == self.run_id
                )
            ).all()
        return summarize(rows)

    # -- the lease -------------------------------------------------------------
    def __enter__(self) -> Claims:
        """Renew the leases of the tenants this runner holds, every third of
        a lease, from a thread of its own."""
        self._renewer = threading.Thread(
            target=self._renew_loop, name="alembic-recipes-claims", daemon=True
        )
        self._renewer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        held = list(self._held)
        for name in held:  # a runner stopping gives its tenants back
            try:
                self.release(name)
            except Exception as error:
                log.warning("could not give back the claim of %s: %s", name, error)
        self.engine.dispose()

    def _renew_loop(self) -> None:
        t = self.table
        while not self._stop.wait(self.lease / 3):
            with self._guard:
                held = list(self._held)
            if not held:
                continue
            try:
                with self._transaction() as conn:
                    conn.execute(
                        update(t)
                        .where(
                            t.c.run_id == self.run_id,
                            t.c.tenant.in_(held),
                            t.c.runner == self.runner,
                        )
                        .values(lease_until=clock(conn.dialect) + self.lease)
                    )
            except Exception as error:  # the next round tries again
                log.warning("could not renew the claims' lease: %s", error)
