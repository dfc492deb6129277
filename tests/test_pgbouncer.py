"""Through PgBouncer in transaction mode (``pool_mode = transaction``,
``default_pool_size = 4``), started by the tests in front of the shared
PostgreSQL: what relies on a session either works in one transaction or
fails at once with one line; nothing hangs, nothing lands in another
tenant's schema, no lock is left behind on the pooler's sessions."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from support.processes import DEADLINE, spawn
from support.projects import Project, add_database
from support.servers import ServerDB, advisory_locks

TENANTS = [f"t{i:03}" for i in range(1, 25)]
POOLER = "goes through a connection pooler"


def _table(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))'


def _three(proj: Project) -> list[str]:
    return [
        proj.revision(name, upgrade=_table(name), downgrade=f'op.drop_table("{name}")')
        for name in ("a", "b", "c")
    ]


def _schema_tables(pg: ServerDB) -> dict[str, set[str]]:
    with pg.engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        )
        found: dict[str, set[str]] = {}
        for schema, table in rows:
            found.setdefault(schema, set()).add(table)
        return found


@pytest.mark.concurrency
def test_two_fleets_through_pgbouncer(
    project: Callable[..., Project],
    pg: ServerDB,
    pgbouncer: Callable[[ServerDB], str],
) -> None:
    """Two fleets started together, one with two workers, on 24 schemas."""
    proj = project("multitenant", url=pgbouncer(pg), prepare=_three)
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", ", ".join(TENANTS))
    proj.set_option("create_tenants", "true")
    head = proj.prepared[-1]
    for _ in range(2):
        plain = spawn(proj, "-x", "tenant=all", "upgrade", "head")
        workers = spawn(proj, "-x", "tenant=all", "-x", "workers=2", "upgrade", "head")
        runs = [p.communicate(timeout=DEADLINE) for p in (plain, workers)]
        for process, (_, err) in zip((plain, workers), runs, strict=True):
            assert process.returncode == 0, err
        upgraded = [set(re.findall(r"\] (t\d+): upgraded ", err)) for _, err in runs]
        assert not upgraded[0] & upgraded[1]  # each tenant migrated once
        assert upgraded[0] | upgraded[1] == set(TENANTS)
        assert any(POOLER in err for _, err in runs)
        found = _schema_tables(pg)
        for name in TENANTS:  # every tenant's tables in its own schema
            assert found[name] == {"a", "b", "c", "alembic_version"}
        assert found.get("public", set()) <= {"alembic_recipes_fleet_run"}
        with pg.engine().connect() as conn:
            for name in TENANTS:
                q = f"SELECT version_num FROM {name}.alembic_version"
                assert list(conn.scalars(sa.text(q))) == [head]
        assert advisory_locks(pg) == 0  # nothing left on the pooler's sessions
        proj.alembic("-x", "tenant=all", "downgrade", "base")
        assert advisory_locks(pg) == 0


def test_replicas_and_autocommit_block_through_pgbouncer(
    project: Callable[..., Project],
    pg: ServerDB,
    pgbouncer: Callable[[ServerDB], str],
) -> None:
    """One database: three replicas migrate it once, in one transaction each;
    a revision with ``autocommit_block()`` fails in one line, before any SQL,
    and leaves the database as it was."""
    proj = project("data-flag", url=pgbouncer(pg))
    first = proj.revision("a", schema_upgrades=_table("a"))
    replicas = [spawn(proj, "upgrade", "head") for _ in range(3)]
    outputs = [p.communicate(timeout=DEADLINE)[1] for p in replicas]
    assert [p.returncode for p in replicas] == [0, 0, 0], outputs
    assert sum("Running upgrade  -> " in out for out in outputs) == 1
    with pg.engine().connect() as conn:
        assert list(conn.scalars(sa.text("SELECT * FROM alembic_version"))) == [first]
    assert advisory_locks(pg) == 0

    proj.revision(
        "index",
        schema_upgrades=(
            "with op.get_context().autocommit_block():\n"
            '    op.create_index("ix_a", "a", ["id"], postgresql_concurrently=True)'
        ),
    )
    failed = proj.alembic("upgrade", "head", ok=False)
    assert failed.code == 255, failed.output
    (line,) = [x for x in failed.output.splitlines() if x.startswith("FAILED:")]
    assert POOLER in line and "autocommit_block()" in line
    assert "127.0.0.1" in line and "direct connection" in line
    with pg.engine().connect() as conn:
        assert list(conn.scalars(sa.text("SELECT * FROM alembic_version"))) == [first]
        assert not sa.inspect(conn).get_indexes("a")
    assert advisory_locks(pg) == 0


def test_what_needs_a_session_is_refused_through_pgbouncer(
    project: Callable[..., Project],
    pg: ServerDB,
    pgbouncer: Callable[[ServerDB], str],
) -> None:
    """Creating a tenant database (a session-level creation lock), several
    databases (their locks held together) and asyncpg (prepared statements):
    one line each naming the pooler and what to do, nothing created."""
    url = pgbouncer(pg)
    name = pg.url.database
    tenant_db = f"{name}_new"
    proj = project("multitenant", url=url.replace(f"/{name}", f"/{name}_{{tenant}}"))
    proj.set_option("create_tenants", "true")
    proj.revision("a", upgrade=_table("a"))
    failed = proj.alembic("-x", "tenant=new", "upgrade", "head", ok=False)
    assert "FAILED:" in failed.output and POOLER in failed.output
    assert f"the creation of database {tenant_db}" in failed.output
    with pg.engine().connect() as conn:
        q = "SELECT count(*) FROM pg_database WHERE datname = :n"
        assert conn.scalar(sa.text(q), {"n": tenant_db}) == 0

    multi = project("multidb-mixed", url=url, name="multi")
    add_database(multi, "other", url)
    failed = multi.alembic("upgrade", "head", ok=False)
    assert POOLER in failed.output and "session-level lock" in failed.output

    asyncpg = project(
        "async-shared", url=url.replace("+psycopg", "+asyncpg"), name="asyncpg"
    )
    failed = asyncpg.alembic("upgrade", "head", ok=False)
    assert POOLER in failed.output and "asyncpg prepares" in failed.output
    assert _schema_tables(pg) == {}
    assert advisory_locks(pg) == 0


@pytest.mark.concurrency
def test_held_lock_and_sigkill_through_pgbouncer(
    project: Callable[..., Project],
    pg: ServerDB,
    pgbouncer: Callable[[ServerDB], str],
) -> None:
    """Beside a live application, through the pooler: a session holding a
    tenant's table makes that tenant fail on its lock timeout, the others go
    on; a run killed (SIGKILL) while it waits leaves nothing behind on the
    pooler's sessions, and the next run migrates the tenant.  The URL's
    password is never printed."""
    url = pgbouncer(pg).replace("postgres@", "postgres:s3cret-pw@")  # trust auth
    proj = project("multitenant", url=url)
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", "t001, t002, t003")
    proj.set_option("create_tenants", "true")
    proj.revision("a", upgrade=_table("a"))
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    last = proj.revision("b", upgrade='op.add_column("a", sa.Column("note", sa.Text))')
    outputs = []
    with pg.engine().connect() as holder:
        holder.execute(sa.text("SELECT * FROM t002.a"))  # blocks ALTER TABLE
        started = time.monotonic()
        failed = proj.alembic(
            "-x", "tenant=all", "-x", "lock_timeout=1s", "-x", "lock_retries=0",
            "-x", "continue=true", "upgrade", "head", ok=False,
        )  # fmt: skip
        assert time.monotonic() - started < 60
        outputs.append(failed.output)
        assert "[2/3] t002: FAILED" in failed.stderr
        assert "lock timeout" in failed.output.lower()

        waiting = spawn(proj, "-x", "tenant=t002", "upgrade", "head")
        deadline = time.monotonic() + DEADLINE
        with pg.engine().connect() as watch:
            q = (
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
            while not watch.scalar(sa.text(q)):  # it waits for the holder
                assert time.monotonic() < deadline and waiting.poll() is None
                time.sleep(0.05)
                watch.rollback()
        waiting.send_signal(signal.SIGKILL)
        waiting.communicate(timeout=DEADLINE)
        holder.rollback()
    deadline = time.monotonic() + 30  # the killed run's server session ends
    while advisory_locks(pg) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert advisory_locks(pg) == 0
    again = proj.alembic("-x", "tenant=all", "upgrade", "head")
    outputs.append(again.output)
    assert "[2/3] t002: upgraded" in again.stderr
    with pg.engine().connect() as conn:
        for name in ("t001", "t002", "t003"):
            q = f"SELECT version_num FROM {name}.alembic_version"
            assert list(conn.scalars(sa.text(q))) == [last]
            columns = {c["name"] for c in sa.inspect(conn).get_columns("a", name)}
            assert "note" in columns
    assert not any("s3cret-pw" in out for out in outputs)
    assert any("postgres:***@" in out for out in outputs)
