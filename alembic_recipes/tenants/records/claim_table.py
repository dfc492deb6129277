"""The claims table of shared fleet runs (``-x shard=claim``), and its statements.

``alembic_recipes_fleet_claim`` lives beside the run record
(:func:`~.record.record_location`): one row per tenant of a run -- its
position and rollout wave, its state (``open``, ``claimed``, ``done``), the
runner holding it and until when (its lease), and its outcome.  A partial
index of the rows not done keeps each claim from reading the done ones.
:class:`~.claims.Claims` is one runner's use of it.
"""

from __future__ import annotations

import functools
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
    select,
    text,
)
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.sql.elements import TextClause

__all__ = [
    "CLAIMED",
    "CLAIM_TABLE",
    "DONE",
    "OPEN",
    "claim_statement",
    "claim_table",
    "last_run_summary",
    "summarize",
    "sync_url",
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
    statement (its data-modifying parts run whatever the rest finds)."""
    table = dialect.identifier_preparer.format_table(claim_table(schema))
    return text(
        f"""WITH finished AS (
    UPDATE {table} SET state = 'done', status = :status, lease_until = NULL,
        updated = :now
    WHERE run_id = :run AND tenant = :prev AND runner = :me AND state = 'claimed'
    RETURNING tenant
), next AS (
    SELECT tenant, position, wave, state, runner FROM {table}
    WHERE run_id = :run AND tenant <> :prev
      AND wave = (SELECT min(wave) FROM {table}
                  WHERE run_id = :run AND state <> 'done' AND tenant <> :prev)
      AND (state = 'open' OR (state = 'claimed' AND lease_until < :now))
    ORDER BY position LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE {table} AS claim SET state = 'claimed', runner = :me,
    lease_until = :until, updated = :now
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
