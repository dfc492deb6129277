"""The claims table of shared fleet runs (``-x shard=claim``), and its statements.

``alembic_recipes_fleet_claim`` lives beside the run record
(:func:`~.record.record_location`): one row per tenant of a run -- its
position and rollout wave, its state (``open``, ``claimed``, ``done``), the
runner holding it and until when (its lease), and its outcome.  A partial
index of the rows not done keeps each claim from reading the done ones.
Leases are written and compared on the database's clock (:func:`clock`), so
runners on machines whose clocks disagree never take a live claim over, nor
wait on a dead one for longer than the lease.
:class:`~.claims.Claims` is one runner's use of it.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.sql import Select, Update
from sqlalchemy.sql.elements import ColumnElement, TextClause

__all__ = [
    "CLAIMED",
    "CLAIM_TABLE",
    "DONE",
    "OPEN",
    "claim_statement",
    "claim_table",
    "clock",
    "ending",
    "failed_in",
    "joining_rows",
    "last_run_summary",
    "next_free",
    "opening_rows",
    "skip_from",
    "summarize",
    "sync_url",
    "wave_count",
    "wave_spec",
]

CLAIM_TABLE = "alembic_recipes_fleet_claim"
OPEN, CLAIMED, DONE = "open", "claimed", "done"
_SYNC_DRIVERS = {
    "postgresql+asyncpg": "postgresql+psycopg",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
    "mariadb+aiomysql": "mariadb+pymysql",
    "mariadb+asyncmy": "mariadb+pymysql",
}


def sync_url(url: str) -> str:
    """*url* with a sync driver where it names an asyncio one: the claims
    are a few short statements, from the main thread and a lease thread."""
    parsed = make_url(url)
    driver = _SYNC_DRIVERS.get(parsed.drivername)
    return (
        parsed.set(drivername=driver).render_as_string(hide_password=False)
        if driver
        else url
    )


@functools.lru_cache(maxsize=8)
def claim_table(schema: str | None) -> Table:
    table = Table(
        CLAIM_TABLE,
        MetaData(),
        Column("run_id", String(40), nullable=False),
        Column("tenant", String(63), nullable=False),
        Column("position", Integer, nullable=False),
        Column("wave", Integer, nullable=False),
        Column("state", String(10), nullable=False),
        Column("runner", String(120)),
        Column("lease_until", Double),
        Column("status", String(40)),
        Column("updated", Double, nullable=False),
        Column("wave_spec", Text),
        PrimaryKeyConstraint("run_id", "tenant"),
        schema=schema,
    )
    # the claims not done, in the order they are taken: each claim reads the
    # first free one, not the done ones before it (PostgreSQL, SQLite: only
    # those rows are in the index)
    not_done = table.c.state != DONE
    Index(
        f"ix_{CLAIM_TABLE}_next",
        table.c.run_id,
        table.c.wave,
        table.c.position,
        postgresql_where=not_done,
        sqlite_where=not_done,
    )
    return table


@functools.lru_cache(maxsize=8)
def claim_statement(schema: str | None, dialect: Dialect) -> TextClause:
    """PostgreSQL: the last tenant done and the next one claimed, in one
    statement (its data-modifying parts run whatever the rest finds); leases
    on the server's clock."""
    table = dialect.identifier_preparer.format_table(claim_table(schema))
    now = "extract(epoch FROM clock_timestamp())"
    return text(
        f"""WITH finished AS (
    UPDATE {table} SET state = 'done', status = :status, lease_until = NULL,
        updated = {now}
    WHERE run_id = :run AND tenant = :prev AND runner = :me AND state = 'claimed'
    RETURNING tenant
), next AS (
    SELECT tenant, position, wave, state, runner FROM {table}
    WHERE run_id = :run AND tenant <> :prev
      AND wave = (SELECT min(wave) FROM {table}
                  WHERE run_id = :run AND state <> 'done' AND tenant <> :prev)
      AND (state = 'open' OR (state = 'claimed' AND lease_until < {now}))
    ORDER BY position LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE {table} AS claim SET state = 'claimed', runner = :me,
    lease_until = {now} + :lease, updated = {now}
FROM next
WHERE claim.run_id = :run AND claim.tenant = next.tenant
RETURNING claim.tenant, claim.position, claim.wave, next.state, next.runner"""
    )


def summarize(rows: Sequence[Any]) -> tuple[Counter[str], int, int]:
    """``(state, status, runner)`` rows of one run: its outcomes (status:
    count, over every runner), how many are not done, how many runners."""
    outcomes = Counter(status for state, status, _ in rows if state == DONE)
    left = sum(1 for state, _, _ in rows if state != DONE)
    runners = len({runner for _, _, runner in rows if runner})
    return outcomes, left, runners


def last_run_summary(conn: Connection, schema: str | None) -> str | None:
    """The last shared run (``-x shard=claim``) as one line, over every
    runner: its tenants by outcome, those left, its runners (None: none)."""
    if not conn.dialect.has_table(conn, CLAIM_TABLE, schema):
        return None
    t = claim_table(schema)
    last = conn.scalar(
        select(t.c.run_id).group_by(t.c.run_id).order_by(func.max(t.c.updated).desc())
    )
    if last is None:
        return None
    rows = conn.execute(
        select(t.c.state, t.c.status, t.c.runner).where(t.c.run_id == last)
    ).all()
    outcomes, left, runners = summarize(rows)
    parts = ", ".join(f"{n} {status}" for status, n in outcomes.most_common())
    state = f"{left} not done yet" if left else "finished"
    return (
        f"Last shared run {last}: {len(rows)} tenants, {runners} runner"
        f"{'' if runners == 1 else 's'}: {parts or 'none done'}; {state}"
    )


# -- rows and wave queries (each on the caller's transaction) -------------------
def opening_rows(
    run_id: str, waves: Sequence[tuple[int, str, Sequence[str]]], now: float
) -> list[dict[str, Any]]:
    """The rows of a run opened with the tenants of *waves* (``(number,
    spec, names)``), in order."""
    names = [(number, spec, name) for number, spec, group in waves for name in group]
    return [
        {
            "run_id": run_id,
            "tenant": name,
            "position": position,
            "wave": number,
            "state": OPEN,
            "updated": now,
            "wave_spec": spec,
        }
        for position, (number, spec, name) in enumerate(names, 1)
    ]


def joining_rows(
    run_id: str, names: Sequence[str], last: int, wave: int, now: float
) -> list[dict[str, Any]]:
    """The rows of tenants *names* joining the run's last wave *wave* after
    position *last*."""
    return [
        {
            "run_id": run_id,
            "tenant": name,
            "position": last + i,
            "wave": wave,
            "state": OPEN,
            "updated": now,
        }
        for i, name in enumerate(names, 1)
    ]


def failed_in(
    conn: Connection, t: Table, run_id: str, wave: int, failed: Sequence[str]
) -> int:
    """How many tenants of *wave* ended in one of the *failed* statuses."""
    query = select(func.count()).where(
        t.c.run_id == run_id,
        t.c.wave == wave,
        t.c.state == DONE,
        t.c.status.in_(list(failed)),
    )
    return int(conn.scalar(query) or 0)


def skip_from(
    conn: Connection, t: Table, run_id: str, wave: int, status: str
) -> list[str]:
    """Mark the tenants of *wave* and later not taken yet done with
    *status*; their names."""
    where = (t.c.run_id == run_id, t.c.wave >= wave, t.c.state == OPEN)
    names = list(conn.scalars(select(t.c.tenant).where(*where)))
    if names:
        conn.execute(
            update(t)
            .where(*where)
            .values(state=DONE, status=status, updated=clock(conn.dialect))
        )
    return names


def wave_spec(conn: Connection, t: Table, run_id: str, wave: int) -> str:
    """How the rollout wrote wave *wave* (``rest`` for the catalog's late)."""
    query = select(t.c.wave_spec).where(t.c.run_id == run_id, t.c.wave == wave)
    return str(conn.scalar(query.limit(1)) or "rest")


def wave_count(conn: Connection, t: Table, run_id: str) -> int:
    """How many rollout waves run *run_id* has."""
    query = select(func.max(t.c.wave)).where(t.c.run_id == run_id)
    return int(conn.scalar(query) or 1)


def clock(dialect: Dialect) -> ColumnElement[Any]:
    """Now, in seconds since the epoch, on the database's clock (PostgreSQL,
    MySQL/MariaDB); SQLite, whose runners share one machine: this one's."""
    if dialect.name == "postgresql":
        return func.date_part("epoch", func.clock_timestamp())
    if dialect.name in ("mysql", "mariadb"):
        return func.unix_timestamp(func.now(6))
    return literal(time.time(), Double)


def next_free(
    t: Table, run_id: str, now: ColumnElement[Any], *, lock: bool
) -> Select[Any]:
    """The next tenant to claim: open, or claimed under a lease that ran out,
    of the lowest wave not done (*lock*: ``FOR UPDATE SKIP LOCKED``)."""
    wave = select(func.min(t.c.wave)).where(t.c.run_id == run_id, t.c.state != DONE)
    free = (t.c.state == OPEN) | ((t.c.state == CLAIMED) & (t.c.lease_until < now))
    query = (
        select(t.c.tenant, t.c.position, t.c.wave, t.c.state, t.c.runner)
        .where(t.c.run_id == run_id, t.c.wave == wave.scalar_subquery(), free)
        .order_by(t.c.position)
        .limit(1)
    )
    return query.with_for_update(skip_locked=True) if lock else query


def ending(
    t: Table,
    run_id: str,
    name: str,
    runner: str,
    state: str,
    status: str | None,
    now: ColumnElement[Any],
) -> Update:
    """Runner *runner*'s claim on *name* ends in *state* (``open``: given
    back; ``done``: with *status*) at *now* (:func:`clock`) -- only while
    that runner holds it."""
    values: dict[str, object] = {
        "state": state,
        "status": status,
        "lease_until": None,
        "updated": now,
    }
    if state == OPEN:
        values["runner"] = None
    return (
        update(t)
        .where(
            t.c.run_id == run_id,
            t.c.tenant == name,
            t.c.runner == runner,
            t.c.state == CLAIMED,
        )
        .values(**values)
    )
