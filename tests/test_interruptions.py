"""A fleet run stopped, killed or cut off: what it reported and recorded is
what the tenants' version tables say, and ``-x tenant=failed`` finishes the job.

Real ``alembic`` processes, real signals at random moments (seeded per trial,
so a failing trial can be run again as it was), real servers.  After each
trial the run's printed lines, its JSON Lines report and the run record in the
database are compared with each tenant's ``alembic_version``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import DEADLINE, spawn, until
from support.projects import Project
from support.servers import ServerDB, waiting_for_locks

DONE = ("upgraded", "already at head")
TENANTS = 200
SLOW = 'op.execute("SELECT pg_sleep(0.004)")'
CREATE_A = 'op.create_table("a", sa.Column("id", sa.Integer))'


def _names(count: int) -> list[str]:
    return [f"t{i:03}" for i in range(count)]


def _fleet(
    project: Callable[..., Project],
    pg: ServerDB,
    count: int = TENANTS,
    *,
    at_r1: bool = True,
) -> tuple[Project, str, str]:
    """*count* schema tenants at r1 (one finished run recorded; *at_r1*
    false: not created yet), r2 to come: a table, an index, a row (each
    tenant a few milliseconds)."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", ", ".join(_names(count)))
    proj.set_option("progress", "lines")
    r1 = proj.revision("r1", upgrade=CREATE_A)
    if at_r1:
        proj.alembic("-x", "tenant=all", "upgrade", "head")
    r2 = proj.revision(
        "r2",
        upgrade='op.create_table("b", sa.Column("id", sa.Integer))\n'
        'op.create_index("ix_b", "b", ["id"])\n'
        'op.execute("INSERT INTO a (id) VALUES (1)")\n' + SLOW,
        downgrade='op.drop_table("b")',
    )
    return proj, r1, r2


def _versions(pg: ServerDB, names: list[str]) -> dict[str, str | None]:
    """Each tenant schema's version (None: no schema, table or row)."""
    found: dict[str, str | None] = {}
    with pg.engine().connect() as conn:
        for name in names:
            table = f"{name}.alembic_version"
            if conn.scalar(sa.text("SELECT to_regclass(:t)"), {"t": table}) is None:
                found[name] = None
                continue
            found[name] = conn.scalar(sa.text(f"SELECT max(version_num) FROM {table}"))
    return found


def _record(pg: ServerDB) -> dict[str, str]:
    with pg.engine().connect() as conn:
        q = "SELECT tenant, status FROM public.alembic_recipes_fleet_run"
        return dict(conn.execute(sa.text(q)).all())  # type: ignore[arg-type]


def _rows_a(pg: ServerDB, names: list[str]) -> dict[str, int]:
    """How many rows r2 inserted into each tenant's table ``a``."""
    with pg.engine().connect() as conn:
        return {
            name: int(conn.scalar(sa.text(f"SELECT count(*) FROM {name}.a")) or 0)
            for name in names
        }


def _told(stderr: str) -> dict[str, str]:
    """What the run's lines said of each tenant: upgraded, interrupted, failed."""
    found = {}
    for name, what in re.findall(r"\] (t\d+): (upgraded|interrupted|FAILED)", stderr):
        found[name] = what
    return found


def _agree(
    pg: ServerDB, names: list[str], head: str, stderr: str, report: Path | None
) -> dict[str, str | None]:
    """The printed lines, the report and the record say of each tenant what
    its version table says; returns the versions."""
    versions = _versions(pg, names)
    at_head = {n for n, v in versions.items() if v == head}
    for name, what in _told(stderr).items():
        assert (what == "upgraded") == (name in at_head), (name, what, versions[name])
    record = _record(pg)
    for name in names:  # schema strategy: the row is in the tenant's transaction
        assert (record[name] in DONE) == (name in at_head), (name, record[name])
    if report is not None and report.exists():
        for line in report.read_text().splitlines():
            entry = json.loads(line)
            if "tenant" in entry:
                done = entry["status"] in DONE
                assert done == (entry["tenant"] in at_head), entry
    return versions


def _wait_for_intent(pg: ServerDB, process: subprocess.Popen[str]) -> None:
    """Until the run has recorded its intent (its tenants pending)."""
    deadline = time.monotonic() + DEADLINE
    q = "SELECT count(*) FROM public.alembic_recipes_fleet_run WHERE status = 'pending'"
    with pg.engine().connect() as conn:
        while time.monotonic() < deadline:
            try:
                if conn.scalar(sa.text(q)) or process.poll() is not None:
                    return
            except sa.exc.ProgrammingError:  # the table is not there yet
                pass
            conn.rollback()
            time.sleep(0.01)
    raise AssertionError("the run recorded no intent")


@pytest.mark.concurrency
@pytest.mark.parametrize("trial", range(20))
def test_kill_9_at_a_random_moment_then_resume_converges(
    project: Callable[..., Project], pg: ServerDB, trial: int, tmp_path: Path
) -> None:
    """SIGKILL at a random moment of a 200-tenant run: the record and the
    report say what the version tables say; one ``-x tenant=failed`` run
    brings every tenant to head, each migrated exactly once."""
    proj, _, head = _fleet(project, pg, at_r1=False)
    names = _names(TENANTS)
    report = tmp_path / "run.jsonl"
    rng = random.Random(trial)
    run = spawn(proj, "-x", "tenant=all", "-x", f"report={report}", "upgrade", "head")
    _wait_for_intent(pg, run)
    time.sleep(rng.uniform(0.0, 2.0))
    run.kill()
    _, err = run.communicate(timeout=DEADLINE)
    versions = _agree(pg, names, head, err, report)
    behind = sorted(n for n, v in versions.items() if v != head)

    resumed = proj.alembic("-x", "tenant=failed", "upgrade", "head", process=True)
    assert f"Tenants: {len(behind)} total: " in resumed.stderr, resumed.stderr
    assert set(_told(resumed.stderr)) == set(behind)
    assert set(_versions(pg, names).values()) == {head}
    assert set(_record(pg).values()) <= set(DONE)
    assert set(_rows_a(pg, names).values()) == {1}  # each tenant's r2 ran once


def _back_to(pg: ServerDB, names: list[str], r1: str) -> None:
    """Every tenant back at r1 by hand, at once (r2's table dropped)."""
    sql = "; ".join(
        f"DROP TABLE {n}.b; UPDATE {n}.alembic_version SET version_num = '{r1}'"
        for n in names
    )
    with pg.engine().begin() as conn:
        conn.exec_driver_sql(sql)


def _signal_trial(
    proj: Project,
    pg: ServerDB,
    names: list[str],
    head: str,
    mode: str,
    rng: random.Random,
    report: Path,
) -> None:
    workers = "2" if mode.startswith("workers") else "1"
    process = spawn(
        proj, "-x", "tenant=all", "-x", f"workers={workers}",
        "-x", f"report={report}", "upgrade", "head", new_session=True,
    )  # fmt: skip
    _wait_for_intent(pg, process)
    time.sleep(rng.uniform(0.0, 1.2))
    signum = signal.SIGINT if mode.endswith("ctrl-c") else signal.SIGTERM
    sent = time.monotonic()
    if mode == "workers ctrl-c":  # the terminal's Ctrl-C: the whole group
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    out, err = process.communicate(timeout=DEADLINE)
    took = time.monotonic() - sent
    assert took < 10, f"{mode}: exited {took:.1f} s after the signal"
    assert "Traceback" not in out + err, err
    finished = "Tenants: " in err and "interrupted by" not in out
    if finished:  # the signal came after the last tenant: nothing to stop
        assert process.returncode in (0, -signum), err
    else:
        assert process.returncode == -signum, err
        assert re.search(rf"FAILED: interrupted by {signum.name}", out), out
        assert len(re.findall(r"Tenants: \d+ total", err)) == 1
    _agree(pg, names, head, err, report)


@pytest.mark.concurrency
@pytest.mark.parametrize(
    "mode", ["serial sigterm", "serial ctrl-c", "workers sigterm", "workers ctrl-c"]
)
def test_signals_at_random_moments_stop_cleanly_and_tell_the_truth(
    project: Callable[..., Project], pg: ServerDB, mode: str, tmp_path: Path
) -> None:
    """12 signals per mode at random moments of a 100-tenant run, each
    followed by ``-x tenant=failed``: the process ends within 10 s, with no
    traceback, one summary and the signal's status; what it printed, its
    report and the record agree with the version tables."""
    proj, r1, head = _fleet(project, pg, 100)
    names = _names(100)
    rng = random.Random(mode)
    report = tmp_path / "run.jsonl"
    for trial in range(12):
        _signal_trial(proj, pg, names, head, mode, rng, report)
        proj.alembic("-x", "tenant=failed", "upgrade", "head")
        assert set(_versions(pg, names).values()) == {head}, trial
        assert set(_rows_a(pg, names).values()) == {trial + 1}, trial
        _back_to(pg, names, r1)  # and again


ONLINE = (
    "with op.get_context().autocommit_block():\n"
    '    op.create_index("ix_a", "a", ["id"], postgresql_concurrently=True)'
)


def _application(pg: ServerDB, name: str = "") -> sa.Engine:
    """The application's sessions: REPEATABLE READ, so that a read keeps a
    snapshot open (what ``CREATE INDEX CONCURRENTLY`` waits for)."""
    return sa.create_engine(
        pg.driver_url("psycopg"),
        poolclass=sa.pool.NullPool,
        isolation_level="REPEATABLE READ",
        connect_args={"application_name": name},
    )


HOLDERS = {
    "table lock": "LOCK TABLE t005.a IN ACCESS EXCLUSIVE MODE",
    "old snapshot": "SELECT 1",  # REPEATABLE READ: a snapshot CONCURRENTLY waits for
}


@pytest.mark.concurrency
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    ("holder", "lock_timeout"),
    [("table lock", "60s"), ("table lock", "0"), ("old snapshot", "0")],
)
def test_sigterm_while_a_tenant_waits_exits_within_seconds(
    project: Callable[..., Project],
    pg: ServerDB,
    workers: str,
    holder: str,
    lock_timeout: str,
) -> None:
    """A second session holds what t005's migration needs -- ACCESS EXCLUSIVE
    on its table, or (``CREATE INDEX CONCURRENTLY``) an old snapshot -- with a
    long lock timeout or none, retries to come: SIGTERM ends the run within
    10 s, the waiting statement cancelled on the server, and every tenant's
    reported status is what its version table says."""
    proj, _, head = _fleet(project, pg, 20)
    names = _names(20)
    if holder == "old snapshot":
        head = proj.revision("online", upgrade=ONLINE)
    engine = _application(pg)
    with engine.connect() as app:
        app.exec_driver_sql(HOLDERS[holder])
        run = spawn(
            proj, "-x", "tenant=all", "-x", f"workers={workers}",
            "-x", f"lock_timeout={lock_timeout}", "-x", "lock_retries=3",
            "upgrade", "head",
        )  # fmt: skip
        until(
            lambda: waiting_for_locks(pg) > 0 or run.poll() is not None,
            "a waiting tenant",
        )
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=DEADLINE)
        took = time.monotonic() - sent
        assert (
            waiting_for_locks(pg) == 0
        )  # nothing of ours queues behind the application
        app.rollback()
    assert took < 10, f"exited {took:.1f} s after SIGTERM:\n{err}"
    assert run.returncode == -signal.SIGTERM, err
    assert "Traceback" not in err and "FAILED: interrupted by SIGTERM" in out
    assert len(re.findall(r"Tenants: \d+ total", err)) == 1
    versions = _agree(pg, names, head, err, None)
    assert versions["t005"] != head
    proj.alembic("-x", "tenant=failed", "upgrade", "head", process=True)
    assert set(_versions(pg, names).values()) == {head}


# -- MariaDB: DDL commits as it runs ---------------------------------------------
MARIA = ["m01", "m02", "m03", "m04"]


@pytest.fixture
def maria(
    project: Callable[..., Project], mysql: ServerDB
) -> Iterator[tuple[Project, ServerDB, str]]:
    """Four tenant databases on MariaDB at r1 (table ``tbl``), the run record
    beside them (``tenants_url``); dropped afterwards."""
    prefix = str(mysql.url.database)
    url = mysql.driver_url("pymysql")
    proj = project(
        "multitenant", url=url.replace(f"/{prefix}", f"/{prefix}_{{tenant}}")
    )
    proj.set_option("tenants", ", ".join(MARIA))
    proj.set_option("tenants_url", url)
    r1 = proj.revision(
        "r1", upgrade='op.create_table("tbl", sa.Column("id", sa.Integer))'
    )
    try:
        proj.alembic("-x", "tenant=all", "upgrade", "head")
        yield proj, mysql, r1
    finally:
        mysql.drop_tenant_databases(MARIA)


def _maria(db: ServerDB, tenant: str, sql: str) -> object:
    url = db.url.set(database=f"{db.url.database}_{tenant}", drivername="mysql+pymysql")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        result = conn.execute(sa.text(sql))
        return result.scalar() if result.returns_rows else None


def _maria_record(db: ServerDB) -> dict[str, tuple[str, str | None]]:
    with db.engine().connect() as conn:
        q = "SELECT tenant, status, to_revision FROM alembic_recipes_fleet_run"
        return {t: (s, r) for t, s, r in conn.execute(sa.text(q)).all()}


TWO_PARTS = (
    'op.create_table("tbl3", sa.Column("id", sa.Integer))\n'
    'op.execute("INSERT INTO tbl (id) VALUES (1)")\n'
    'op.add_column("tbl", sa.Column("x", sa.Integer))'
)


def test_mariadb_lock_timeout_after_committed_ddl_needs_repair(
    maria: tuple[Project, ServerDB, str], tmp_path: Path
) -> None:
    """r2 creates ``tbl3`` (committed at once on MariaDB), inserts a row, then
    its ALTER of ``tbl`` meets a lock held in m02: not retried, m02 *needs
    repair* -- the revision, the last statement that committed, the cause
    (lock timeout, its holder named) -- in the log, the report and the
    record.  A rerun stops on m02 with the same diagnosis, running nothing
    of it again; repaired by hand and run alone, m02 finishes."""
    proj, db, _ = maria
    r2 = proj.revision("r2", upgrade=TWO_PARTS)
    report = tmp_path / "run.jsonl"
    holder = db.url.set(database=f"{db.url.database}_m02", drivername="mysql+pymysql")
    with sa.create_engine(holder, poolclass=sa.pool.NullPool).connect() as app:
        app.execute(sa.text("SELECT * FROM tbl"))  # a metadata lock until rollback
        run = proj.alembic(
            "-x", "tenant=all", "-x", "continue=true", "-x", "lock_timeout=1s",
            "-x", "lock_retries=3", "-x", f"report={report}", "upgrade", "head",
            ok=False,
        )  # fmt: skip
        app.rollback()
    err = run.stderr
    (line,) = [x for x in err.splitlines() if "m02: FAILED" in x]
    assert f"m02: needs repair: revision {r2} failed after part of it had" in line
    assert "INSERT INTO tbl (id) VALUES (1)" in line  # the last that committed
    assert "Lock wait timeout exceeded" in line and "retry" not in err
    assert "Tenants: 4 total: 3 upgraded, 1 needs repair" in err
    assert "Traceback" in err  # the cause, in full, under the diagnosis
    assert _maria_record(db)["m02"] == ("needs repair", r2)
    entry = next(json.loads(x) for x in report.read_text().splitlines() if "m02" in x)
    assert entry["status"] == "needs repair" and entry["to"] == r2
    assert _maria(db, "m02", "SELECT count(*) FROM tbl") == 1

    again = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    (line,) = [x for x in again.stderr.splitlines() if "m02: FAILED" in x]
    assert f"m02: needs repair: revision {r2} failed after part of it had" in line
    assert _maria(db, "m02", "SELECT count(*) FROM tbl") == 1  # nothing ran again
    resumed = proj.alembic("-x", "tenant=failed", "upgrade", "head", ok=False)
    assert "m02: needs repair" in resumed.stdout

    # repaired by hand (its part undone), then run alone: it finishes
    _maria(db, "m02", "DROP TABLE tbl3")
    _maria(db, "m02", "DELETE FROM tbl")
    proj.alembic("-x", "tenant=m02", "upgrade", "head")
    proj.alembic("-x", "tenant=failed", "upgrade", "head")
    assert {s for s, _ in _maria_record(db).values()} <= set(DONE)
    for name in MARIA:
        assert _maria(db, name, "SELECT count(*) FROM tbl") == 1
        assert _maria(db, name, "SELECT version_num FROM alembic_version") == r2


def test_mariadb_kill_inside_a_revision_is_found_on_the_next_run(
    maria: tuple[Project, ServerDB, str],
) -> None:
    """A run killed inside a revision whose DDL committed (MariaDB): the next
    run stops on that tenant -- its version is before the revision the
    record says it was in -- and runs none of its statements again."""
    proj, db, r1 = maria
    r2 = proj.revision(
        "r2",
        upgrade=TWO_PARTS.replace(
            "\nop.add", '\nop.execute("SELECT SLEEP(30)")\nop.add'
        ),
    )
    run = spawn(proj, "-x", "tenant=all", "upgrade", "head")
    tbl3 = (  # this tenant's database only: the server shows every test's
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'tbl3'"
    )
    until(  # m01's CREATE TABLE committed, its INSERT waits for the next DDL
        lambda: _maria(db, "m01", tbl3) == 1 or run.poll() is not None, "m01's tbl3"
    )
    run.kill()
    run.communicate(timeout=DEADLINE)
    assert _maria_record(db)["m01"] == ("running", r2)
    assert _maria(db, "m01", "SELECT version_num FROM alembic_version") == r1
    again = proj.alembic("-x", "tenant=m01,m02", "upgrade", "head", ok=False)
    (line,) = [x for x in again.stderr.splitlines() if "m01: FAILED" in x]
    assert f"m01: needs repair: a run was stopped inside revision {r2}" in line
    assert _maria(db, "m01", tbl3) == 1  # nothing of r2 ran again
    assert _maria(db, "m01", "SELECT count(*) FROM tbl") == 0
    assert _maria_record(db)["m01"] == ("needs repair", r2)


# -- one wait, one run; bad values before any SQL ---------------------------------
COUNTED = "op.execute(\"SELECT nextval('public.seen')\")\n"  # survives a rollback


def _seen(pg: ServerDB) -> int:
    with pg.engine().connect() as conn:
        return int(conn.scalar(sa.text("SELECT last_value FROM public.seen")) or 0)


@pytest.mark.parametrize("mode", ["auto", "true"])
def test_a_replayed_script_that_fails_runs_once(
    project: Callable[..., Project], pg: ServerDB, mode: str
) -> None:
    """A replayed script meeting a lock timeout waits once per attempt (one
    attempt here), and a slow revision that fails runs once: neither is run
    again through Alembic.  The failure names the statement that waited and
    the one that failed."""
    proj, _, r2 = _fleet(project, pg, 4)
    proj.alembic("-x", "tenant=all", "upgrade", r2)
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("CREATE SEQUENCE public.seen")
    proj.revision(
        "r3", upgrade=COUNTED + 'op.add_column("a", sa.Column("x", sa.Integer))'
    )
    with pg.engine().connect() as app:
        app.exec_driver_sql("LOCK TABLE t001.a IN ACCESS EXCLUSIVE MODE")
        run = proj.alembic(
            "-x", "tenant=t001", "-x", "lock_timeout=1s", "-x", "lock_retries=0",
            "-x", f"compiled={mode}", "upgrade", "head", ok=False,
        )  # fmt: skip
        app.rollback()
    assert "lock timeout on 'ALTER TABLE a ADD COLUMN x INTEGER'" in run.stdout
    assert "t001.a (AccessExclusiveLock) held by session" in run.stdout
    assert _seen(pg) == 1  # the script ran once: one wait
    proj.revision(
        "r4",
        upgrade=COUNTED + 'op.execute("SELECT pg_sleep(0.5)")\n'
        'op.execute("SELECT * FROM no_such_table")',
    )
    failed = proj.alembic(
        "-x", "tenant=t002,t003", "-x", "continue=true", "-x", f"compiled={mode}",
        "upgrade", "head", ok=False,
    )  # fmt: skip
    assert _seen(pg) == 1 + 2 * 2  # r3 and r4, once for each tenant
    assert failed.stderr.count("[SQL: SELECT * FROM no_such_table]") == 2
    assert "in the replayed script of" in failed.stderr
    assert "2 of 2 tenants failed: t002, t003" in failed.stdout


@pytest.mark.orchestration
def test_bad_values_fail_before_any_sql(
    project: Callable[..., Project], tmp_path: Path
) -> None:
    """A report path that cannot be written, a duration past the longest the
    servers take, digits that are not ASCII: one ``FAILED:`` line each,
    exit 255, no tenant touched (SQLite tenant files: none created)."""
    proj = project("multitenant")
    proj.revision("r1", upgrade=CREATE_A)
    cases = {
        f"report={tmp_path}/missing/run.jsonl": "its folder",
        f"report={tmp_path}": "it is a folder",
        "lock_timeout=3000000s": "at most 2147483s",
        "lock_timeout=\u0661\u0660s": "expected a duration such as 10s",
        "lock_retries=\u0663": "invalid value",
    }
    for arg, said in cases.items():
        run = proj.alembic("-x", "tenant=all", "-x", arg, "upgrade", "head", ok=False)
        assert run.code == 255, run.output
        (line,) = run.stdout.splitlines()
        assert line.startswith("FAILED: ") and said in line, line
        assert "Traceback" not in run.stderr
        assert not (proj.root / "tenants").exists()


def test_a_record_that_cannot_be_written_never_fails_the_run(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """The record's table cannot be written (here a view stands in its
    place): one warning, and every tenant migrates as it would without it."""
    proj, _, head = _fleet(project, pg, 4)
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("DROP TABLE public.alembic_recipes_fleet_run")
        conn.exec_driver_sql(
            "CREATE VIEW public.alembic_recipes_fleet_run AS SELECT 1 AS tenant"
        )
    run = proj.alembic("-x", "tenant=all", "upgrade", "head")
    assert "could not write the run record" in run.stderr
    assert "Tenants: 4 total: 4 upgraded" in run.stderr
    assert set(_versions(pg, _names(4)).values()) == {head}


def test_resume_reads_the_versions_not_only_the_record(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """Whatever the record says, a tenant whose version is not the target
    its row records is resumed (here one put back by hand after the run)."""
    proj, r1, head = _fleet(project, pg, 4)
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    proj.alembic("-x", "tenant=t002", "downgrade", r1)  # one tenant: not recorded
    assert _record(pg)["t002"] == "upgraded"
    out = proj.alembic("-x", "tenant=failed", "upgrade", "head").stderr
    assert "-x tenant=failed: 1 not at the target their row records" in out
    assert "Tenants: 1 total: 1 upgraded" in out and "] t002: upgraded" in out
    assert set(_versions(pg, _names(4)).values()) == {head}


# -- autocommit_block(): committed as it goes ---------------------------------------
def test_failure_after_an_autocommit_block_needs_repair_and_keeps_its_cause(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """A revision creates a table, builds an index concurrently in an
    ``autocommit_block()`` (both committed by then), then fails: the tenant
    needs repair -- the revision, the last statement that committed, the
    first error as the cause -- and is not run again, even when the failure
    is a lock timeout.  The record lands in ``public``, never in a tenant's
    schema."""
    proj, _, r2 = _fleet(project, pg, 3)
    proj.alembic("-x", "tenant=all", "upgrade", r2)
    r3 = proj.revision(
        "r3",
        upgrade='op.create_table("c", sa.Column("id", sa.Integer))\n'
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ix_c", "c", ["id"], postgresql_concurrently=True)\n'
        'op.execute("SELECT 1/0")',
    )
    run = proj.alembic("-x", "tenant=all", "-x", "continue=true", "upgrade", "head",
                       ok=False)  # fmt: skip
    err = run.stderr
    lines = [x for x in err.splitlines() if ": FAILED after" in x]
    assert len(lines) == 3, err
    for line in lines:
        assert f"needs repair: revision {r3} failed after part of it had" in line
        assert "CREATE INDEX CONCURRENTLY ix_c ON c (id)" in line
        assert "DivisionByZero" in line  # the first error, not the unlock's
    assert "division by zero" in err and "Traceback" in err  # the cause in full
    assert "Tenants: 3 total: 3 needs repair" in err
    assert set(_record(pg).values()) == {"needs repair"}
    with pg.engine().connect() as conn:
        where = conn.scalars(
            sa.text(
                "SELECT table_schema FROM information_schema.tables"
                " WHERE table_name = 'alembic_recipes_fleet_run'"
            )
        ).all()
    assert where == ["public"]
    again = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert f"t000: needs repair: revision {r3} failed after" in again.stderr
    assert "DuplicateTable" not in again.output  # nothing of r3 ran again


def test_concurrent_index_waiting_on_an_old_snapshot_names_it(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """``CREATE INDEX CONCURRENTLY`` waits for an old transaction and times out:
    the session holding it is named (not "no holder left by then"), the
    INVALID index it leaves is built again by the rerun, and the summary
    counts what ran."""
    proj, _, r2 = _fleet(project, pg, 3)
    proj.alembic("-x", "tenant=all", "upgrade", r2)
    proj.revision("online", upgrade=ONLINE)
    engine = _application(pg, "report")
    with engine.connect() as app:
        pid = app.scalar(sa.text("SELECT pg_backend_pid()"))
        run = proj.alembic(
            "-x", "tenant=t001", "-x", "lock_timeout=1s", "-x", "lock_retries=0",
            "upgrade", "head", ok=False,
        )  # fmt: skip
        app.rollback()
    assert f"session {pid} (application 'report'" in run.stdout, run.output
    assert "an older transaction" in run.stdout
    again = proj.alembic("-x", "tenant=all", "upgrade", "head")
    assert "Tenants: 3 total: 3 upgraded" in again.stderr


# -- database strategy on PostgreSQL ------------------------------------------------
def _pg_tenants(pg: ServerDB, names: list[str]) -> dict[str, str | None]:
    """Each tenant database's version (None: no database or no version)."""
    found: dict[str, str | None] = {}
    admin = pg.engine()
    with admin.connect() as conn:
        have = set(conn.scalars(sa.text("SELECT datname FROM pg_database")))
    for name in names:
        database = f"{pg.url.database}_{name}"
        if database not in have:
            found[name] = None
            continue
        engine = sa.create_engine(
            pg.url.set(database=database, drivername="postgresql+psycopg"),
            poolclass=sa.pool.NullPool,
        )
        with engine.connect() as conn:
            found[name] = None
            if conn.scalar(sa.text("SELECT to_regclass('alembic_version')")):
                q = "SELECT max(version_num) FROM alembic_version"
                found[name] = conn.scalar(sa.text(q))
    return found


@pytest.mark.concurrency
def test_database_strategy_killed_then_stopped_tells_the_truth(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """A database per tenant on PostgreSQL, the record beside the catalog
    (``tenants_url``): SIGKILL while the fleet creates and migrates them, then
    SIGTERM during the next revision -- each time the record's finished rows
    are at head (a row written right after a commit may still say pending),
    the signal run ends within 10 s, and ``-x tenant=failed`` converges."""
    names = [f"d{i:02}" for i in range(12)]
    url = pg.driver_url("psycopg")
    each = url.replace(f"/{pg.url.database}", f"/{pg.url.database}_{{tenant}}")
    proj = project("multitenant", url=each)
    proj.set_option("tenants", ", ".join(names))
    proj.set_option("tenants_url", url)
    head = proj.revision("r1", upgrade=CREATE_A + "\n" + SLOW.replace("0.004", "0.1"))
    try:
        for signum in (signal.SIGKILL, signal.SIGTERM):
            if signum == signal.SIGTERM:
                head = proj.revision("r2", upgrade='op.execute("SELECT pg_sleep(0.2)")')
            run = spawn(proj, "-x", "tenant=all", "upgrade", "head")
            _wait_for_intent(pg, run)
            time.sleep(0.8)
            sent = time.monotonic()
            run.send_signal(signum)
            _, err = run.communicate(timeout=DEADLINE)
            assert time.monotonic() - sent < 10
            assert run.returncode == -signum, err
            assert "Traceback" not in err
            versions = _pg_tenants(pg, names)
            for name, status in _record(pg).items():
                if status in DONE:  # written after its commit: never ahead of it
                    assert versions[name] == head, (name, status)
            for name, what in _told(err).items():
                assert (what == "upgraded") == (versions[name] == head), name
            assert any(v != head for v in versions.values())  # stopped mid-run
            proj.alembic("-x", "tenant=failed", "upgrade", "head")
            assert set(_pg_tenants(pg, names).values()) == {head}
    finally:
        pg.drop_tenant_databases(names)


def test_a_tenant_put_aside_after_a_lock_timeout_is_reported_as_it_ended(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """t001 meets a lock timeout and is put aside to run again after the
    others; t002 then fails and the run stops: t001 is reported failed on its
    lock timeout, not run again -- not "not attempted", since it ran."""
    proj, _, _ = _fleet(project, pg, 4)
    with pg.engine().begin() as conn:  # t002's r2 will fail: its table b exists
        conn.exec_driver_sql("CREATE TABLE t002.b (id int)")
    with pg.engine().connect() as app:
        app.exec_driver_sql("LOCK TABLE t001.a IN ACCESS EXCLUSIVE MODE")
        run = proj.alembic(
            "-x", "tenant=all", "-x", "lock_timeout=500ms", "upgrade", "head",
            ok=False,
        )  # fmt: skip
        app.rollback()
    err = run.stderr
    assert "t001: lock timeout on 'INSERT INTO a (id) VALUES (1)'" in err
    (line,) = [x for x in err.splitlines() if "t001: FAILED" in x]
    assert "not run again: the run stopped at an earlier failure" in line
    assert "Tenants: 4 total: 1 upgraded, 2 failed, 1 not attempted" in err
    assert _record(pg)["t001"] == "failed"


BLOCKED_WRITER = """
import logging, sys
from alembic_recipes.database.stopping import check, stop_on_signals, stopped_by
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(threadName)s %(message)s"
)
log = logging.getLogger("alembic.recipes.test")
print("ready", flush=True)
try:
    with stop_on_signals():
        while True:  # stderr is a pipe nobody reads yet: writes block
            check()
            log.info("x" * 4000)
except BaseException as exc:
    print("stopped" if stopped_by(exc) else f"raised {exc!r}", flush=True)
"""


def test_the_signal_handler_writes_nothing_itself() -> None:
    """A signal may land while the main thread is inside a write to stderr;
    a handler writing there too fails with "reentrant call" (a CI run's
    random-moment trial met it once).  So the handler writes nothing: the
    stop is said once, by the ``stopping`` thread, while the main thread is
    blocked writing to a full pipe; the run stops with no logging error."""
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_WRITER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # its stderr pipe fills: the main thread blocks in write()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=DEADLINE)
    said = [line for line in err.splitlines() if "SIGTERM: stopping" in line]
    assert [line.split()[0] for line in said] == ["stopping"], said
    assert "reentrant call" not in err and "Logging error" not in err, err[-2000:]
    assert out.strip() == "stopped"


FORKED_CHILD = """
import os, signal
from alembic_recipes.database.stopping import stop_on_signals
with stop_on_signals():
    pid = os.fork()
    if pid == 0:  # the child's first instruction: Ctrl-C already its parent's
        os._exit(0 if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else 1)
    _, status = os.waitpid(pid, 0)
    parent = signal.getsignal(signal.SIGINT).__name__
print(os.waitstatus_to_exitcode(status), parent)
"""


def test_a_child_forked_during_a_run_leaves_ctrl_c_to_its_parent() -> None:
    """Ctrl-C reaches the whole process group; a worker forked a moment
    before must not run the parent's handler, whose stop state it copied (a
    CI run's random-moment trial saw it raise ``KeyboardInterrupt`` in the
    worker's start-up).  A child forked under the stop's handling ignores
    SIGINT from its first instruction; the parent keeps its handler."""
    done = subprocess.run(
        [sys.executable, "-c", FORKED_CHILD],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    assert done.stdout.split() == ["0", "_handle"], done.stdout + done.stderr
