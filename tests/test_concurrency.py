"""Several processes at once, as replicas at start-up and two fleet runs do:
real ``alembic`` processes against PostgreSQL, MariaDB and SQLite files,
bounded in time."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic_recipes.database.locks import lock_key
from filelock import FileLock, Timeout
from support.processes import DEADLINE, spawn, together
from support.projects import Project, add_database
from support.servers import ServerDB

pytestmark = pytest.mark.concurrency

REPLICAS = 8
TRIALS = 3


def count_rows(url: str, table: str) -> dict[str, int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table):
            return {}
        rows = conn.execute(sa.text(f"SELECT rev, count(*) FROM {table} GROUP BY rev"))
        return {str(rev): int(n) for rev, n in rows}


RUNS_UP = """\
op.create_table("runs", sa.Column("rev", sa.String(10)))
op.execute("INSERT INTO runs (rev) VALUES ('r1')")
"""


# -- replicas: 8 processes, one database, 3 trials ---------------------------------
@pytest.mark.postgresql
def test_async_shared_replicas_on_postgresql(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=pg.driver_url("asyncpg"))
    monkeypatch.chdir(proj.root)
    proj.revision("one", upgrade=RUNS_UP, downgrade='op.drop_table("runs")')
    proj.revision("two", upgrade="op.execute(\"INSERT INTO runs VALUES ('r2')\")")
    url = pg.driver_url("psycopg")
    for _ in range(TRIALS):
        runs = together(proj, REPLICAS, "upgrade", "head")
        assert [r.code for r in runs] == [0] * REPLICAS, [r.stderr for r in runs]
        assert count_rows(url, "runs") == {"r1": 1, "r2": 1}
        applied = sum(r.stderr.count("Running upgrade") for r in runs)
        assert applied == 2  # the others waited, then found the database at head
        proj.alembic("downgrade", "base")


@pytest.mark.mysql
def test_data_flag_replicas_on_mariadb_run_each_data_part_once(
    project: Callable[..., Project], mysql: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag", url=mysql.driver_url("pymysql"))
    monkeypatch.chdir(proj.root)
    proj.revision(
        "one",
        schema_upgrades='op.create_table("runs", sa.Column("rev", sa.String(10)))',
        schema_downgrades='op.drop_table("runs")',
        data_upgrades="op.execute(\"INSERT INTO runs VALUES ('data1')\")",
        data_downgrades='op.execute("DELETE FROM runs")',
    )
    proj.revision(
        "two",
        schema_upgrades='op.create_table("more", sa.Column("id", sa.Integer))',
        schema_downgrades='op.drop_table("more")',
        data_upgrades="op.execute(\"INSERT INTO runs VALUES ('data2')\")",
    )
    url = mysql.driver_url("pymysql")
    for _ in range(TRIALS):
        runs = together(proj, REPLICAS, "-x", "data=true", "upgrade", "head")
        assert [r.code for r in runs] == [0] * REPLICAS, [r.stderr for r in runs]
        assert count_rows(url, "runs") == {"data1": 1, "data2": 1}
        proj.alembic("-x", "data=true", "downgrade", "base")


@pytest.mark.postgresql
@pytest.mark.mysql
def test_multidb_replicas_on_three_servers(
    project: Callable[..., Project],
    pg: ServerDB,
    mysql: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """main = PostgreSQL (asyncpg), analytics = SQLite file, audit = MariaDB."""
    proj = project("multidb-mixed")
    monkeypatch.chdir(proj.root)
    proj.set_option("sqlalchemy.url", pg.driver_url("asyncpg"), section="main")
    analytics = f"sqlite:///{proj.root}/analytics.db"
    proj.set_option("sqlalchemy.url", analytics, section="analytics")
    add_database(proj, "audit", mysql.driver_url("pymysql"))
    bodies = {
        f"{fn}_{db}": body
        for db in ("main", "analytics", "audit")
        for fn, body in (("upgrade", RUNS_UP), ("downgrade", 'op.drop_table("runs")'))
    }
    proj.revision("one", **bodies)
    urls = [pg.driver_url("psycopg"), analytics, mysql.driver_url("pymysql")]
    for _ in range(TRIALS):
        runs = together(proj, REPLICAS, "upgrade", "head")
        assert [r.code for r in runs] == [0] * REPLICAS, [r.stderr for r in runs]
        assert [count_rows(u, "runs") for u in urls] == [{"r1": 1}] * 3
        proj.alembic("downgrade", "base")


# -- two fleet runs at once ----------------------------------------------------------
def _fleet(project: Callable[..., Project], pg: ServerDB, tenants: int) -> Project:
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", ", ".join(f"t{i:03}" for i in range(tenants)))
    proj.revision("one", upgrade=RUNS_UP, downgrade='op.drop_table("runs")')
    return proj


SUMMARY = re.compile(r"Tenants: (\d+) total: (.*)")


def _upgraded(stderr: str) -> set[str]:
    return set(re.findall(r"\] (\w+): upgraded ", stderr))


@pytest.mark.postgresql
def test_two_fleet_runs_at_once(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _fleet(project, pg, 50)
    monkeypatch.chdir(proj.root)
    for _ in range(2):
        first, second = together(proj, 2, "-x", "tenant=all", "upgrade", "head")
        assert first.code == second.code == 0, first.stderr + second.stderr
        a, b = _upgraded(first.stderr), _upgraded(second.stderr)
        assert not a & b and len(a | b) == 50  # each tenant migrated exactly once
        for run, mine in ((first, a), (second, b)):
            total, parts = SUMMARY.findall(run.stderr)[-1]
            assert total == "50"
            upgraded = re.search(r"(\d+) upgraded", parts)
            assert int(upgraded.group(1) if upgraded else 0) == len(mine)
        with pg.engine().connect() as conn:
            for i in range(50):
                q = f"SELECT count(*) FROM t{i:03}.runs"
                assert conn.scalar(sa.text(q)) == 1
        proj.alembic("-x", "tenant=all", "downgrade", "base")


# -- the lock: bounded wait, dies with its holder ----------------------------------
SLEEPY = "import time\ntime.sleep({seconds})\n"


@pytest.mark.postgresql
def test_lock_timeout_is_one_line_and_changes_nothing(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=pg.driver_url("asyncpg"))
    monkeypatch.chdir(proj.root)
    proj.revision("slow", upgrade=RUNS_UP + SLEEPY.format(seconds=4))
    holder = spawn(proj, "upgrade", "head")
    try:
        _wait_for_advisory_lock(pg)
        waiter = proj.alembic(
            "-x", "migration_lock_timeout=500ms", "upgrade", "head", ok=False
        )
        assert waiter.code == 255
        lines = waiter.stdout.strip().splitlines()
        assert len(lines) == 1, waiter.stdout
        assert lines[0].startswith("FAILED: timed out after 0.5 s waiting for the")
        assert "held by PostgreSQL pid" in lines[0]
        assert "Running upgrade" not in waiter.stderr
    finally:
        holder.communicate(timeout=DEADLINE)
    assert holder.returncode == 0
    assert count_rows(pg.driver_url("psycopg"), "runs") == {"r1": 1}


def _wait_for_advisory_lock(pg: ServerDB, schema: str | None = None) -> None:
    """Wait until some session holds the migration lock of *pg*'s version table
    (in *schema*): this test's own database and lock key, so that advisory
    locks taken by other tests or programs on the same server do not count."""
    key = lock_key(pg.url.database or "", schema)
    sql = sa.text(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND d.datname = current_database()"
        " AND l.classid::bigint = (CAST(:key AS bigint) >> 32) & 4294967295"
        " AND l.objid::bigint = CAST(:key AS bigint) & 4294967295"
    )
    deadline = time.monotonic() + 30
    with pg.engine().connect() as conn:
        while time.monotonic() < deadline:
            if conn.scalar(sql, {"key": key}):
                return
            conn.rollback()
            time.sleep(0.05)
    pytest.fail("the first process never took the migration lock")


@pytest.mark.postgresql
def test_killed_holder_releases_the_lock(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=pg.driver_url("psycopg"))
    monkeypatch.chdir(proj.root)
    rev = proj.revision("slow", upgrade=RUNS_UP + SLEEPY.format(seconds=60))
    victim = spawn(proj, "upgrade", "head")
    _wait_for_advisory_lock(pg)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=DEADLINE)
    text = proj.revision_file(rev).read_text().replace("time.sleep(60)", "")
    proj.revision_file(rev).write_text(text)
    started = time.monotonic()
    proj.alembic("-x", "migration_lock_timeout=20s", "upgrade", "head")
    assert time.monotonic() - started < 15
    assert count_rows(pg.driver_url("psycopg"), "runs") == {"r1": 1}


def test_killed_holder_releases_the_sqlite_file_lock(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared")  # sqlite+aiosqlite file
    monkeypatch.chdir(proj.root)
    rev = proj.revision("slow", upgrade=RUNS_UP + SLEEPY.format(seconds=60))
    victim = spawn(proj, "upgrade", "head")
    lock_file = proj.root / "app.db.alembic-lock"
    deadline = time.monotonic() + 30
    while not lock_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    held = FileLock(str(lock_file))
    while time.monotonic() < deadline:  # until the victim holds it, not only made it
        try:
            held.acquire(timeout=0)
        except Timeout:
            break
        held.release()
        time.sleep(0.05)
    waiter = proj.alembic(
        "-x", "migration_lock_timeout=0.3", "upgrade", "head", ok=False
    )
    assert "timed out after 0.3 s waiting for the migration lock" in waiter.stdout
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=DEADLINE)
    text = proj.revision_file(rev).read_text().replace("time.sleep(60)", "")
    proj.revision_file(rev).write_text(text)
    proj.alembic("-x", "migration_lock_timeout=20s", "upgrade", "head")
    assert count_rows(f"sqlite:///{proj.root}/app.db", "runs") == {"r1": 1}


def test_lock_can_be_turned_off_and_bad_timeouts_fail(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag")
    monkeypatch.chdir(proj.root)
    proj.set_option("migration_lock", "false")
    proj.alembic("upgrade", "head")
    assert not (proj.root / "app.db.alembic-lock").exists()
    for key, bad in (
        ("migration_lock_timeout", "0"),
        ("migration_lock_timeout", "-1"),
        ("lock_timeout", "soon"),
        ("statement_timeout", "inf"),
    ):
        result = proj.alembic("-x", f"{key}={bad}", "upgrade", "head", ok=False)
        assert f"invalid value {bad!r} for -x {key}: expected a duration" in (
            result.stdout
        )


# -- parallel fleets ---------------------------------------------------------------
def _state(pg: ServerDB, schemas: list[str]) -> dict[str, tuple[object, ...]]:
    with pg.engine().connect() as conn:
        return {
            s: (
                tuple(sorted(sa.inspect(conn).get_table_names(schema=s))),
                conn.scalar(sa.text(f"SELECT version_num FROM {s}.alembic_version")),
                conn.scalar(sa.text(f"SELECT count(*) FROM {s}.runs")),
            )
            for s in schemas
        }


@pytest.mark.postgresql
@pytest.mark.parametrize("compiled", ["false", "true"])
def test_parallel_fleet_same_end_state_as_serial(
    compiled: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = _fleet(project, pg, 0)
    monkeypatch.chdir(proj.root)
    serial = [f"s{i}" for i in range(12)]
    parallel = [f"p{i}" for i in range(12)]
    args = ("-x", f"compiled={compiled}", "-x", "create=true")
    proj.alembic("-x", f"tenant={','.join(serial)}", *args, "upgrade", "head")
    out = proj.alembic(
        "-x", f"tenant={','.join(parallel)}", *args, "-x", "workers=2",
        "upgrade", "head",
    ).stderr  # fmt: skip
    assert "Running 12 tenants in 2 worker processes" in out
    # the replay script is rendered once, in the parent, not once per worker
    assert out.count("rendered") == (1 if compiled == "true" else 0), out
    assert sorted(re.findall(r"\[(\d+)/12\]", out), key=int) == [
        str(i) for i in range(1, 13)
    ]
    assert "Tenants: 12 total: 12 upgraded" in out
    end = _state(pg, serial + parallel)
    assert {end[s] for s in serial} == {end[p] for p in parallel}
    assert len({end[s] for s in serial}) == 1


@pytest.mark.postgresql
def test_parallel_fleet_stop_and_continue(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _fleet(project, pg, 20)
    # every tenant takes 0.2 s more, so t000's failure (at once) comes well
    # before the other worker could have run them all
    proj.revision("slow", upgrade='op.execute("SELECT pg_sleep(0.2)")')
    monkeypatch.chdir(proj.root)
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA t000; CREATE TABLE t000.runs (x int)")
    stopped = proj.alembic(
        "-x", "tenant=all", "-x", "workers=2", "upgrade", "head", ok=False
    )
    assert "] t000: FAILED after" in stopped.stderr
    assert "not attempted" in stopped.stderr
    assert "stopped at the first failure" in stopped.stdout
    went_on = proj.alembic(
        "-x", "tenant=all", "-x", "workers=2", "-x", "continue=true", "upgrade",
        "head", ok=False,
    )  # fmt: skip
    assert "Tenants: 20 total:" in went_on.stderr
    assert "not attempted" not in went_on.stderr
    assert "FAILED: 1 of 20 tenants failed: t000" in went_on.stdout
    with pg.engine().connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM t000.runs")) == 0
        for i in range(1, 20):
            assert conn.scalar(sa.text(f"SELECT count(*) FROM t{i:03}.runs")) == 1


@pytest.mark.postgresql
def test_parallel_fleet_sigterm(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _fleet(project, pg, 30)
    monkeypatch.chdir(proj.root)
    proj.revision("slow", upgrade='op.execute("SELECT pg_sleep(0.3)")')
    run = spawn(proj, "-x", "tenant=all", "-x", "workers=2", "upgrade", "head")
    deadline = time.monotonic() + DEADLINE
    query = sa.text(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'"
    )
    with pg.engine().connect() as conn:  # until some tenants are done
        while conn.scalar(query) < 2 and time.monotonic() < deadline:
            conn.rollback()
            time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=DEADLINE)
    assert run.returncode == -signal.SIGTERM, err  # ended by the signal, after
    assert "FAILED: interrupted by SIGTERM:" in out and "not attempted" in err
    done = set(re.findall(r"\] (t\d+): upgraded ", err))
    assert 0 < len(done) < 30
    with pg.engine().connect() as conn:
        for i in range(30):
            name = f"t{i:03}"
            has = sa.inspect(conn).has_table("runs", schema=name)
            assert has == (name in done)  # whole tenants only: none half-applied


def test_parallel_fleet_database_strategy(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    names = [f"d{i}" for i in range(8)]
    proj.set_option("tenants", ", ".join(names))
    proj.revision("one", upgrade=RUNS_UP)
    out = proj.alembic("-x", "tenant=all", "-x", "workers=3", "upgrade", "head").stderr
    assert "Running 8 tenants in 3 worker processes" in out
    for name in names:
        url = f"sqlite:///{proj.root}/tenants/{name}.db"
        assert count_rows(url, "runs") == {"r1": 1}
    again = proj.alembic("-x", "tenant=all", "-x", "workers=3", "upgrade", "head")
    assert "Tenants: 8 total: 8 already at head" in again.stderr
    bad = proj.alembic("-x", "workers=0", "-x", "tenant=all", "current", ok=False)
    assert "invalid value '0' for workers / fleet_workers" in bad.stdout
