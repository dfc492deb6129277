"""Beside a live application: lock and statement timeouts, a blocked tenant
failing fast with who blocks it, retries after the lock is gone.

Every test holds a real lock from a second connection, as an application's
open transaction would, and runs the real ``alembic`` console script.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from support.processes import DEADLINE, spawn
from support.projects import Project
from support.servers import ServerDB, tables, versions

APP = "app-under-test"


@contextmanager
def holding(url: str, sql: str) -> Iterator[int]:
    """A second session (``application_name`` APP) runs *sql* in an open
    transaction and keeps it open meanwhile; yields its server id."""
    engine = sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={"application_name": APP}
    )
    with engine.connect() as conn:
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        conn.exec_driver_sql(sql)
        try:
            yield int(pid)
        finally:
            conn.rollback()


def _tenants(pg: ServerDB, names: list[str]) -> None:
    with pg.engine().begin() as conn:
        for name in names:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")


def _lock_waits_timed_out(pg: ServerDB, schema: str, table: str, times: int) -> None:
    """Return once sessions have waited for a lock on *schema*.*table* and
    stopped waiting (their lock timeout fired) *times* times, polling from a
    third session."""
    waiting = sa.text(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE NOT l.granted AND n.nspname = :schema AND c.relname = :table"
    )
    seen, ended = False, 0
    deadline = time.monotonic() + DEADLINE
    with pg.engine().connect() as conn:
        while time.monotonic() < deadline:
            now = bool(conn.scalar(waiting, {"schema": schema, "table": table}))
            conn.rollback()
            if seen and not now:
                ended += 1
                if ended == times:
                    return
            seen = now
            time.sleep(0.01)
    raise AssertionError(f"{ended} of {times} lock waits on {schema}.{table} ended")


def _columns(pg: ServerDB, schema: str) -> list[str]:
    with pg.engine().connect() as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns("tbl", schema=schema)]


def _version(pg: ServerDB, schema: str) -> str:
    with pg.engine().connect() as conn:
        q = f"SELECT version_num FROM {schema}.alembic_version"
        return str(conn.scalar(sa.text(q)))


@pytest.fixture
def fleet(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, list[str]]:
    """Six tenant schemas at revision r1 (table ``tbl``), r2 adds a column."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    names = [f"t{i:03d}" for i in range(1, 7)]
    proj.set_option("tenants", ", ".join(names))
    monkeypatch.chdir(proj.root)
    _tenants(pg, names)
    proj.revision("r1", upgrade='op.create_table("tbl", sa.Column("id", sa.Integer))')
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    proj.revision(
        "r2",
        upgrade='op.add_column("tbl", sa.Column("x", sa.Integer))',
        downgrade='op.drop_column("tbl", "x")',
    )
    return proj, names


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.orchestration
def test_blocked_tenant_fails_fast_naming_who_blocks_it(
    fleet: tuple[Project, list[str]], pg: ServerDB, workers: str
) -> None:
    proj, names = fleet
    r1 = _version(pg, "t001")
    started = time.monotonic()
    with holding(
        pg.driver_url("psycopg"), "LOCK TABLE t003.tbl IN ACCESS EXCLUSIVE MODE"
    ) as pid:
        run = proj.alembic(
            "-x", "tenant=all", "-x", "lock_timeout=300ms", "-x", "lock_retries=1",
            "-x", "continue=true", "-x", f"workers={workers}", "upgrade", "head",
            ok=False,
        )  # fmt: skip
    took = time.monotonic() - started
    assert run.code == 255
    # one lock timeout per attempt, one pause: bounded, not forever
    assert took < 30, took
    out = run.stderr
    failed = next(line for line in out.splitlines() if "t003: FAILED" in line)
    assert "lock timeout on 'ALTER TABLE tbl ADD COLUMN x INTEGER'" in failed
    assert f"t003.tbl (AccessExclusiveLock) held by session {pid}" in failed
    assert f"application '{APP}', idle in transaction" in failed
    assert "gave up after 2 attempts" in failed
    assert "retry 1 of 1" in out
    assert "Tenants: 6 total: 5 upgraded, 1 failed" in out
    assert "1 of 6 tenants failed: t003" in run.stdout
    # the blocked tenant is untouched; the others are at r2
    assert _version(pg, "t003") == r1 and _columns(pg, "t003") == ["id"]
    for name in set(names) - {"t003"}:
        assert _columns(pg, name) == ["id", "x"]
    # the lock released, a rerun converges and touches only t003
    again = proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "t003: upgraded" in again and "5 already at head" in again
    assert _columns(pg, "t003") == ["id", "x"]


@pytest.mark.orchestration
def test_lock_released_during_the_retry_pause_succeeds(
    fleet: tuple[Project, list[str]], pg: ServerDB
) -> None:
    proj, _ = fleet
    with holding(
        pg.driver_url("psycopg"), "LOCK TABLE t002.tbl IN ACCESS EXCLUSIVE MODE"
    ):
        process = spawn(
            proj, "-x", "tenant=all", "-x", "lock_timeout=200ms", "-x",
            "lock_retries=5", "upgrade", "head",
        )  # fmt: skip
        # the replayed script's wait, then Alembic's: t002 now waits to run again
        _lock_waits_timed_out(pg, "t002", "tbl", times=2)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err

    assert "runs again after the other tenants (retry 1 of 5)" in err
    assert "Tenants: 6 total: 6 upgraded" in err
    assert _columns(pg, "t002") == ["id", "x"]


@pytest.mark.orchestration
def test_single_tenant_lock_timeout_is_one_line(
    fleet: tuple[Project, list[str]], pg: ServerDB
) -> None:
    proj, _ = fleet
    with holding(
        pg.driver_url("psycopg"), "LOCK TABLE t001.tbl IN ACCESS EXCLUSIVE MODE"
    ) as pid:
        run = proj.alembic(
            "-x", "tenant=t001", "-x", "lock_timeout=200ms", "-x", "lock_retries=0",
            "upgrade", "head", ok=False,
        )  # fmt: skip
    assert run.code == 255
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: t001: lock timeout on")
    assert f"held by session {pid}" in lines[0]
    assert "gave up after 1 attempt " in lines[0]


@pytest.mark.parametrize("template", ["async-shared", "data-flag"])
@pytest.mark.orchestration
def test_single_database_retries_then_names_the_holder(
    template: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = project(template, url=pg.driver_url("asyncpg"))
    monkeypatch.chdir(proj.root)
    body = {"async-shared": "upgrade", "data-flag": "schema_upgrades"}[template]
    proj.revision("r1", **{body: 'op.create_table("tbl", sa.Column("id", sa.Integer))'})
    proj.alembic("upgrade", "head")
    proj.revision("r2", **{body: 'op.add_column("tbl", sa.Column("x", sa.Integer))'})
    with holding(
        pg.driver_url("psycopg"), "LOCK TABLE tbl IN ACCESS EXCLUSIVE MODE"
    ) as pid:
        run = proj.alembic(
            "-x", "lock_timeout=200ms", "-x", "lock_retries=1", "upgrade", "head",
            ok=False,
        )  # fmt: skip
    assert run.code == 255
    (line,) = run.stdout.strip().splitlines()
    assert line.startswith("FAILED: the database postgresql+asyncpg://")
    assert "lock timeout on 'ALTER TABLE tbl ADD COLUMN x INTEGER'" in line
    assert f"public.tbl (AccessExclusiveLock) held by session {pid}" in line
    assert "retry 1 of 1" in run.stderr
    proj.alembic("upgrade", "head")


@pytest.mark.orchestration
def test_timeouts_are_set_in_the_migration_transaction(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults 10s / 1h, -x overrides, 0 keeps the server's; SET LOCAL: the
    session is back to the server's setting afterwards."""
    proj = project("data-flag", url=pg.driver_url("psycopg"))
    monkeypatch.chdir(proj.root)
    record = (
        'op.execute("CREATE TABLE IF NOT EXISTS seen AS SELECT'
        " current_setting('lock_timeout') AS lock,"
        " current_setting('statement_timeout') AS stmt WITH NO DATA\")\n"
        "op.execute(\"INSERT INTO seen SELECT current_setting('lock_timeout'),"
        " current_setting('statement_timeout')\")"
    )
    for name in ("a", "b", "c"):
        proj.revision(name, schema_upgrades=record)
    proj.alembic("upgrade", "+1")
    proj.alembic("-x", "lock_timeout=1500ms", "-x", "statement_timeout=2min",
                 "upgrade", "+1")  # fmt: skip
    proj.set_option("lock_timeout", "0")
    proj.set_option("statement_timeout", "0")
    proj.alembic("upgrade", "+1")
    with pg.engine().connect() as conn:
        seen = conn.execute(sa.text("SELECT lock, stmt FROM seen")).all()
        server = conn.execute(
            sa.text("SELECT current_setting('lock_timeout'),"
                    " current_setting('statement_timeout')")
        ).one()  # fmt: skip
    assert seen == [("10s", "1h"), ("1500ms", "2min"), tuple(server)]


@pytest.mark.orchestration
def test_statement_timeout_stops_a_runaway_statement(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=pg.driver_url("psycopg"))
    monkeypatch.chdir(proj.root)
    proj.revision("slow", upgrade='op.execute("SELECT pg_sleep(30)")')
    started = time.monotonic()
    run = proj.alembic("-x", "statement_timeout=300ms", "upgrade", "head", ok=False)
    assert time.monotonic() - started < 20
    assert "canceling statement due to statement timeout" in run.output
    assert "retry" not in run.stderr  # runs again only after lock timeouts


@pytest.mark.orchestration
def test_mariadb_lock_wait_timeout(
    project: Callable[..., Project], mysql: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=mysql.driver_url("pymysql"))
    monkeypatch.chdir(proj.root)
    proj.revision("r1", upgrade='op.create_table("tbl", sa.Column("id", sa.Integer))')
    proj.alembic("upgrade", "head")
    proj.revision("r2", upgrade='op.add_column("tbl", sa.Column("x", sa.Integer))')
    engine = mysql.engine()
    with engine.connect() as conn:
        holder = conn.scalar(sa.text("SELECT CONNECTION_ID()"))
        conn.execute(sa.text("SELECT * FROM tbl"))  # a metadata lock until rollback
        started = time.monotonic()
        run = proj.alembic("-x", "lock_timeout=1s", "upgrade", "head", ok=False)
        took = time.monotonic() - started
        conn.rollback()
    assert took < 20, took
    (line,) = run.stdout.strip().splitlines()
    assert "lock timeout on 'ALTER TABLE tbl ADD COLUMN x INTEGER'" in line
    assert "Lock wait timeout exceeded" in line
    assert f"session {holder} (application 'root@" in line
    assert "not run again: DDL on mysql commits as it runs" in line
    with engine.connect() as conn:  # LOCK TABLES holds no transaction
        holder = conn.scalar(sa.text("SELECT CONNECTION_ID()"))
        conn.exec_driver_sql("LOCK TABLES tbl READ")
        run = proj.alembic("-x", "lock_timeout=1s", "upgrade", "head", ok=False)
        conn.exec_driver_sql("UNLOCK TABLES")
    (line,) = run.stdout.strip().splitlines()
    assert f"session {holder} (application 'root@" in line, line
    proj.alembic("upgrade", "head")
    with engine.connect() as conn:  # the session settings were put back
        assert "x" in [c["name"] for c in sa.inspect(conn).get_columns("tbl")]


@pytest.mark.orchestration
def test_sqlite_busy_timeout(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag")
    monkeypatch.chdir(proj.root)
    proj.revision(
        "r1", schema_upgrades='op.create_table("tbl", sa.Column("id", sa.Integer))'
    )
    writer = sqlite3.connect(proj.root / "app.db", isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")  # another writer, holding the file
    try:
        started = time.monotonic()
        run = proj.alembic(
            "-x", "lock_timeout=300ms", "-x", "lock_retries=1", "upgrade", "head",
            ok=False,
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        writer.rollback()
        writer.close()
    assert took < 15, took  # not SQLite's 5 s default per try, nor forever
    assert "database is locked" in run.output
    assert re.search(r"lock timeout on .*gave up after 2 attempts", run.stdout)
    proj.alembic("upgrade", "head")


# -- signals -------------------------------------------------------------------
def _sessions(pg: ServerDB, where: str = "true") -> list[tuple[object, ...]]:
    """Other sessions on the test's database (matching *where*)."""
    with pg.engine().connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT pid, application_name, state, wait_event_type"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    f" AND pid <> pg_backend_pid() AND ({where})"
                )
            ).all()
        )


def _wait_until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.orchestration
def test_sigterm_stops_a_serial_fleet_and_leaves_no_waiting_session(
    fleet: tuple[Project, list[str]], pg: ServerDB
) -> None:
    proj, _ = fleet
    r1 = _version(pg, "t001")
    with holding(
        pg.driver_url("psycopg"), "LOCK TABLE t003.tbl IN ACCESS EXCLUSIVE MODE"
    ):
        process = spawn(
            proj, "-x", "tenant=all", "-x", "lock_timeout=60s", "upgrade", "head"
        )
        waiting = "wait_event_type = 'Lock'"
        _wait_until(lambda: bool(_sessions(pg, waiting)), "t003 to wait for the lock")
        process.send_signal(signal.SIGTERM)
        try:
            _out, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate()
            pytest.fail(f"no exit after SIGTERM:\n{err}")
        # gone at once: nothing of ours queues behind the application's lock
        assert _sessions(pg, waiting) == []
    assert process.returncode == -signal.SIGTERM, err
    assert "SIGTERM: stopping; no tenant starts after this" in err
    assert "Tenants: 6 total: 2 upgraded, 1 interrupted (rolled back), 3 not" in err
    assert _columns(pg, "t003") == ["id"] and _version(pg, "t003") == r1
    assert _columns(pg, "t004") == ["id"]


@pytest.mark.orchestration
def test_killed_parent_stops_its_workers_within_a_second(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    names = [f"k{i:03d}" for i in range(40)]
    proj.set_option("tenants", ", ".join(names))
    monkeypatch.chdir(proj.root)
    _tenants(pg, names)
    proj.revision(
        "slow",
        upgrade='op.create_table("tbl", sa.Column("id", sa.Integer))\n'
        'op.execute("SELECT pg_sleep(0.3)")',
    )
    process = spawn(proj, "-x", "tenant=all", "-x", "workers=2", "upgrade", "head")

    def done() -> int:
        with pg.engine().connect() as conn:
            return len(sa.inspect(conn).get_schema_names()) and sum(
                sa.inspect(conn).has_table("tbl", schema=n) for n in names
            )

    _wait_until(lambda: done() >= 2, "two tenants migrated")
    process.kill()
    process.communicate(timeout=20)
    _wait_until(lambda: not _sessions(pg), "the workers' sessions to end", 5)
    settled = done()
    time.sleep(1.5)
    assert done() == settled < len(names)  # nothing migrated unsupervised


# -- online DDL ------------------------------------------------------------------
CONCURRENTLY = (
    "with op.get_context().autocommit_block():\n"
    '    op.create_index("ix_tbl_id", "tbl", ["id"], postgresql_concurrently=True)\n'
    'op.create_table("after_block", sa.Column("id", sa.Integer))'
)


def _index_state(pg: ServerDB, schema: str) -> tuple[bool | None, bool, int]:
    """(index valid, or None when missing; after_block in *schema*; version rows)."""
    with pg.engine().connect() as conn:
        valid = conn.scalar(
            sa.text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c"
                " ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relname = 'ix_tbl_id' AND n.nspname = :s"
            ),
            {"s": schema},
        )
        after = sa.inspect(conn).has_table("after_block", schema=schema)
        rows = 0
        if sa.inspect(conn).has_table("alembic_version", schema=schema):
            q = f"SELECT count(*) FROM {schema}.alembic_version"
            rows = int(conn.scalar(sa.text(q)) or 0)
    return valid, after, rows


@pytest.mark.concurrency
def test_tenant_lock_outlives_the_commit_of_an_autocommit_block(
    fleet: tuple[Project, list[str]], pg: ServerDB
) -> None:
    """A tenant migrates in one transaction holding a transaction-level lock;
    when ``autocommit_block()`` commits it, the lock is kept (session-level)
    until the tenant is done: a second run arriving meanwhile waits, then
    finds the tenant at head."""
    proj, _ = fleet
    proj.revision(
        "slow block",
        upgrade=(
            "with op.get_context().autocommit_block():\n"
            '    op.execute("SELECT pg_sleep(2)")\n'
            'op.create_table("after_block", sa.Column("id", sa.Integer))'
        ),
        args="--head head",
    )
    first = spawn(proj, "-x", "tenant=t001", "upgrade", "head")
    deadline = time.monotonic() + DEADLINE
    with pg.engine().connect() as conn:
        q = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(2)'"
        while not conn.scalar(sa.text(q)):  # the first run is inside the block
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
            conn.rollback()
    second = spawn(proj, "-x", "tenant=t001", "upgrade", "head")
    _, first_err = first.communicate(timeout=DEADLINE)
    _, second_err = second.communicate(timeout=DEADLINE)
    assert first.returncode == second.returncode == 0, first_err + second_err
    assert "Running upgrade" in first_err and "Running upgrade" not in second_err
    assert "Waiting for the migration lock" in second_err
    assert _index_state(pg, "t001")[1:] == (True, 1)  # after_block, one version row


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("-x", "tenant=all"), id="fleet"),
        pytest.param(("-x", "tenant=all", "-x", "compiled=true"), id="compiled"),
        pytest.param(("-x", "tenant=all", "-x", "workers=2"), id="workers"),
        pytest.param(("-x", "tenant=t001"), id="one"),
    ],
)
def test_create_index_concurrently_in_every_fleet_mode(
    fleet: tuple[Project, list[str]], pg: ServerDB, args: tuple[str, ...]
) -> None:
    proj, names = fleet
    with pg.engine().begin() as conn:  # tables with rows
        for name in names:
            conn.exec_driver_sql(
                f"INSERT INTO {name}.tbl SELECT generate_series(1, 500)"
            )
    proj.revision("online", upgrade=CONCURRENTLY, args="--head head")
    run = proj.alembic(*args, "upgrade", "head")
    head = re.findall(r"-> (\w+), online", run.stderr) or re.findall(
        r"upgraded \w+ -> (\w+)", run.stderr
    )
    assert head, run.stderr
    done = names if "tenant=all" in args else ["t001"]
    for name in done:
        # valid index, the table after the block in the tenant's schema (its
        # search_path survived the block's commit), one version row
        assert _index_state(pg, name) == (True, True, 1), name
    assert not _index_state(pg, "public")[1]
    again = proj.alembic(*args, "upgrade", "head").stderr
    assert "already at head" in again


def test_async_shared_and_data_flag_run_autocommit_blocks(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    for template, body in (
        ("async-shared", "upgrade"),
        ("data-flag", "schema_upgrades"),
    ):
        proj = project(template, url=pg.driver_url("asyncpg"), name=template)
        monkeypatch.chdir(proj.root)
        proj.revision(
            "r1", **{body: 'op.create_table("tbl", sa.Column("id", sa.Integer))'}
        )
        proj.revision("r2", **{body: CONCURRENTLY})
        proj.alembic("upgrade", "head")
        assert _index_state(pg, "public")[:2] == (True, True), template
        with pg.engine().begin() as conn:
            conn.exec_driver_sql("DROP TABLE tbl, after_block, alembic_version")


def test_failed_concurrent_index_build_is_rebuilt_on_rerun(
    fleet: tuple[Project, list[str]], pg: ServerDB
) -> None:
    proj, names = fleet
    with pg.engine().begin() as conn:  # a duplicate in t002 only
        for name in names:
            conn.exec_driver_sql(f"INSERT INTO {name}.tbl VALUES (1), (2)")
        conn.exec_driver_sql("INSERT INTO t002.tbl VALUES (2)")
    proj.revision(
        "unique",
        upgrade=(
            "with op.get_context().autocommit_block():\n"
            '    op.create_index("ux_tbl_id", "tbl", ["id"], unique=True,'
            " postgresql_concurrently=True)"
        ),
        args="--head head",
    )
    run = proj.alembic("-x", "tenant=all", "-x", "continue=true", "upgrade", "head",
                       ok=False)  # fmt: skip
    assert "1 of 6 tenants failed: t002" in run.stdout

    def index(schema: str) -> bool | None:
        with pg.engine().connect() as conn:
            return conn.scalar(
                sa.text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON"
                    " c.oid = i.indexrelid JOIN pg_namespace n ON"
                    " n.oid = c.relnamespace WHERE c.relname = 'ux_tbl_id'"
                    " AND n.nspname = :s"
                ),
                {"s": schema},
            )

    assert index("t002") is False  # what a failed concurrent build leaves
    assert index("t001") is True
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("DELETE FROM t002.tbl WHERE id = 2")
    again = proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "Dropping INVALID index t002.ux_tbl_id, left by a concurrent build" in again
    assert index("t002") is True
    assert (
        "Dropping INVALID"
        not in proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    )


def test_multidb_runs_an_autocommit_block(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """main on PostgreSQL (asyncpg) builds an index concurrently; analytics
    (SQLite) migrates beside it; both commit, one version row each."""
    proj = project("multidb-mixed")
    proj.set_option("sqlalchemy.url", pg.driver_url("asyncpg"), section="main")
    monkeypatch.chdir(proj.root)
    proj.revision(
        "tables",
        upgrade_main='op.create_table("tbl", sa.Column("id", sa.Integer))',
        upgrade_analytics='op.create_table("events", sa.Column("id", sa.Integer))',
    )
    proj.revision(
        "online",
        upgrade_main=CONCURRENTLY,
        upgrade_analytics='op.create_table("more", sa.Column("id", sa.Integer))',
    )
    proj.alembic("upgrade", "head")
    assert _index_state(pg, "public") == (True, True, 1)
    assert {"events", "more"} <= tables(f"sqlite:///{proj.root}/analytics.db")
    assert len(versions(f"sqlite:///{proj.root}/analytics.db")) == 1


# -- a connection killed mid-run ---------------------------------------------------
def _terminate_when_sleeping(pg: ServerDB) -> None:
    """Wait for a session of the test's database running pg_sleep, kill it."""
    where = "query LIKE '%pg_sleep%' AND state = 'active'"
    _wait_until(lambda: bool(_sessions(pg, where)), "the migration's pg_sleep")
    with pg.engine().connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                f" datname = current_database() AND pid <> pg_backend_pid() AND {where}"
            )
        )


@pytest.mark.orchestration
def test_killed_connection_is_one_failed_line(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=pg.driver_url("asyncpg"))
    monkeypatch.chdir(proj.root)
    proj.revision(
        "slow",
        upgrade='op.create_table("tbl", sa.Column("id", sa.Integer))\n'
        'op.execute("SELECT pg_sleep(30)")',
    )
    process = spawn(proj, "upgrade", "head")
    _terminate_when_sleeping(pg)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 255, err
    (line,) = out.strip().splitlines()
    assert line.startswith("FAILED: the database postgresql+asyncpg://")
    assert "the connection was lost (" in line
    assert "its open transaction was not committed" in line
    assert "Traceback" not in err
    with pg.engine().connect() as conn:
        assert not sa.inspect(conn).has_table("tbl")


@pytest.mark.orchestration
def test_killed_tenant_connection_names_the_tenant(
    fleet: tuple[Project, list[str]], pg: ServerDB
) -> None:
    proj, _ = fleet
    proj.revision(
        "slow", upgrade='op.execute("SELECT pg_sleep(30)")', args="--head head"
    )
    process = spawn(proj, "-x", "tenant=all", "-x", "compiled=false", "upgrade", "head")
    _terminate_when_sleeping(pg)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 255, err
    assert re.search(
        r"\[1/6\] t001: FAILED after \d+ ms: t001: the connection was lost", err
    )
    assert "Traceback" not in err
    assert "1 of 6 tenants failed: t001" in out


def test_create_index_concurrently_per_tenant_database(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Database strategy on PostgreSQL, two workers: each tenant database
    builds its index concurrently, after its table got rows."""
    base = pg.url.database
    proj = project("multitenant")
    template = pg.url.set(
        drivername="postgresql+psycopg", database=f"{base}_{{tenant}}"
    )
    url = template.render_as_string(hide_password=False)
    proj.set_option("sqlalchemy.url", url.replace("%7B", "{").replace("%7D", "}"))
    proj.set_option("tenants", "da, db")
    monkeypatch.chdir(proj.root)
    proj.revision(
        "r1",
        upgrade='op.create_table("tbl", sa.Column("id", sa.Integer))\n'
        'op.execute("INSERT INTO tbl SELECT generate_series(1, 500)")',
    )
    proj.revision("online", upgrade=CONCURRENTLY)
    admin = sa.create_engine(
        pg.url.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    try:
        proj.alembic("-x", "tenant=all", "-x", "workers=2", "upgrade", "head")
        for name in ("da", "db"):
            tenant = ServerDB(pg.url.set(database=f"{base}_{name}"))
            assert _index_state(tenant, "public") == (True, True, 1), name
    finally:
        admin.dispose()
        pg.drop_tenant_databases(("da", "db"))
