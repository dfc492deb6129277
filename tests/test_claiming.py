"""Runners claim tenants (``-x shard=claim -x run=ID``): any number of real
``alembic`` processes share one run; a runner killed with SIGKILL loses its
tenant to the others when its lease runs out; a runner started later joins;
tenants that join the catalog meanwhile are run; each tenant is migrated
exactly once (its revision inserts a row), and the record is complete.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic_recipes.tenants.selection.selection import in_shard
from support.processes import DEADLINE, cli_environment, spawn
from support.projects import Project
from support.servers import ServerDB

CLAIM = ("-x", "tenant=all", "-x", "shard=claim", "-x", "claim_lease=2s")
ONCE = (
    'op.create_table("a", sa.Column("id", sa.Integer))\n'
    'op.execute("INSERT INTO a (id) VALUES (1)")'
)


TABLE = "alembic_version"
VERSION = sa.text("SELECT version_num FROM alembic_version")
RECORD = "alembic_recipes_fleet_run"


def _names(count: int, start: int = 0) -> list[str]:
    return [f"t{i:04}" for i in range(start, start + count)]


def _claims(engine: sa.Engine, run: str, schema: str = "public") -> dict[str, str]:
    """Each tenant's claim state (``done``, ...) in run *run*."""
    table = f"{schema}.alembic_recipes_fleet_claim" if schema else ""
    table = table or "alembic_recipes_fleet_claim"
    with engine.connect() as conn:
        try:
            rows = conn.execute(
                sa.text(f"SELECT tenant, state FROM {table} WHERE run_id = :r"),
                {"r": run},
            ).all()
        except sa.exc.DBAPIError:  # not created yet
            return {}
    return {str(tenant): str(state) for tenant, state in rows}


def _wait_until(test: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if test():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def _finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    done = []
    for process in processes:
        _, err = process.communicate(timeout=DEADLINE)
        done.append((process.returncode, err))
    return done


def _production_day(
    proj: Project,
    claims_engine: sa.Engine,
    add_to_catalog: Callable[[list[str]], None],
    first: int,
    schema: str = "public",
) -> tuple[list[tuple[int, str]], list[str]]:
    """4 runners of run ``job-1``; one SIGKILLed once a fifth of the tenants
    are done; 20 tenants join the catalog; a fifth runner starts.  Returns
    each runner's exit code and log, and the tenants added."""
    args = (*CLAIM, "-x", "run=job-1", "upgrade", "head")
    runners = [spawn(proj, *args) for _ in range(4)]

    def fifth_done() -> bool:
        states = _claims(claims_engine, "job-1", schema).values()
        return sum(state == "done" for state in states) >= first // 5

    try:
        _wait_until(fifth_done, "a fifth of the tenants are done")
    except AssertionError:
        for runner in runners:
            runner.kill()
        logs = [err[-1500:] for _, err in _finish(runners)]
        raise AssertionError("\n---\n".join(logs)) from None
    added = _names(20, start=first)
    add_to_catalog(added)  # while the run goes: every tenant takes 10 ms or more
    runners[0].kill()
    runners.append(spawn(proj, *args))
    return _finish(runners), added


def _check_runs(runs: list[tuple[int, str]]) -> None:
    (killed, _), *others = runs
    assert killed == -9
    for code, err in others:
        assert code == 0, err[-3000:]
        summary = r"Run job-1(:| finished before this runner started).*\b\d+ tenants"
        assert re.search(summary, err), err[-2000:]


@pytest.mark.concurrency
def test_claiming_runners_on_postgresql_schemas(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """1,000 schema tenants from a catalog table: every tenant at head once,
    the record complete, the killed runner's tenant taken over."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", "")  # the catalog alone
    proj.set_option("tenants_query", "SELECT name FROM public.catalog ORDER BY name")
    proj.set_option("progress", "lines")
    head = proj.revision("r1", upgrade=ONCE + '\nop.execute("SELECT pg_sleep(0.01)")')
    engine = pg.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE public.catalog (name text primary key)"))
        conn.execute(
            sa.text("INSERT INTO public.catalog VALUES (:n)"),
            [{"n": n} for n in _names(1000)],
        )

    def add(names: list[str]) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO public.catalog VALUES (:n)"),
                [{"n": n} for n in names],
            )

    runs, added = _production_day(proj, engine, add, 1000)
    _check_runs(runs)
    names = [*_names(1000), *added]
    with engine.connect() as conn:
        rows = {
            name: conn.scalar(sa.text(f"SELECT count(*) FROM {name}.a"))
            for name in names
        }
        versions = {
            name: conn.scalar(
                sa.text(f"SELECT version_num FROM {name}.alembic_version")
            )
            for name in names
        }
        record = dict(
            conn.execute(
                sa.text(
                    "SELECT tenant, status FROM public.alembic_recipes_fleet_run"
                    " WHERE run_id = 'job-1'"
                )
            ).all()
        )
    assert set(rows.values()) == {1}  # each tenant's revision ran once
    assert set(versions.values()) == {head}
    assert set(record) == set(names)
    assert set(record.values()) <= {"upgraded", "already at head"}, record
    assert set(_claims(engine, "job-1").values()) == {"done"}
    # a runner that starts after the run finished does nothing, and says so
    late = proj.alembic(*CLAIM, "-x", "run=job-1", "upgrade", "head", process=True)
    assert "Run job-1 finished before this runner started: nothing to do" in (
        late.stderr
    )
    status = proj.alembic("-x", "tenant=all", "current", process=True)
    assert f"Last shared run job-1: {len(names)} tenants, " in status.stderr
    assert status.stderr.count("; finished") == 1


@pytest.mark.concurrency
@pytest.mark.parametrize("server", ["pg", "mysql"])
def test_claiming_runners_over_databases(
    project: Callable[..., Project], request: pytest.FixtureRequest, server: str
) -> None:
    """The database strategy on PostgreSQL and MariaDB: 30 tenant databases,
    the claims and the record in the tenants_url database."""
    db: ServerDB = request.getfixturevalue(server)
    driver = "psycopg" if server == "pg" else "pymysql"
    base = sa.make_url(db.driver_url(driver))
    prefix = base.database
    proj = project("multitenant", url=db.driver_url(driver) + "_{tenant}")
    proj.set_option("tenants_url", db.driver_url(driver))
    proj.set_option("tenants", "")  # the catalog alone
    proj.set_option("tenants_query", "SELECT name FROM catalog ORDER BY name")
    proj.set_option("progress", "lines")
    head = proj.revision("r1", upgrade=ONCE)
    engine = db.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE catalog (name varchar(63) primary key)"))
        conn.execute(
            sa.text("INSERT INTO catalog VALUES (:n)"), [{"n": n} for n in _names(30)]
        )

    def add(names: list[str]) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO catalog VALUES (:n)"), [{"n": n} for n in names]
            )

    schema = "" if server == "mysql" else "public"
    try:
        runs, added = _production_day(proj, engine, add, 30, schema=schema)
        _check_runs(runs)
        for name in [*_names(30), *added]:
            url = base.set(database=f"{prefix}_{name}")
            tenant = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with tenant.connect() as conn:
                assert conn.scalar(sa.text("SELECT count(*) FROM a")) == 1, name
                version = conn.scalar(
                    sa.text("SELECT version_num FROM alembic_version")
                )
                assert version == head, name
            tenant.dispose()
        assert set(_claims(engine, "job-1", schema).values()) == {"done"}
    finally:
        db.drop_tenant_databases(f"{prefix}_{n}" for n in _names(50))


@pytest.mark.orchestration
def test_rollout_waves_hold_across_runners(
    project: Callable[..., Project], tmp_path: Path
) -> None:
    """A canary that fails stops the later waves for every runner; the
    record says the rest was not attempted."""
    proj = project("multitenant")
    proj.set_option("tenants", ", ".join(_names(12)))
    proj.set_option("rollout", "t0000; 50%%; rest")
    proj.revision(
        "r1",
        upgrade='if op.get_bind().engine.url.database.endswith("t0000.db"):\n'
        '    raise RuntimeError("canary breaks")\n' + ONCE,
    )
    args = (*CLAIM, "-x", "run=wave", "upgrade", "head")
    runs = _finish([spawn(proj, *args) for _ in range(3)])
    assert all(code != 0 or "Run wave" in err for code, err in runs)
    logs = "".join(err for _, err in runs)
    assert "canary breaks" in logs
    record = sa.create_engine(
        f"sqlite:///{proj.root}/tenants/alembic_recipes_fleet_run.db"
    )
    with record.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.text("SELECT tenant, status FROM alembic_recipes_fleet_run")
            ).all()
        )
    assert statuses["t0000"] == "failed"
    assert {statuses[n] for n in _names(11, start=1)} == {"not attempted"}
    assert not (proj.root / "tenants" / "t0001.db").exists()


@pytest.mark.orchestration
@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("-x", "shard=claim"), "-x shard=claim needs the run id its runners share"),
        (("-x", "run=abc"), "-x run=abc names a run that claiming runners share"),
        (("-x", "shard=claim", "-x", "run=a b"), "invalid value 'a b' for -x run"),
        (
            ("-x", "shard=claim", "-x", "run=x", "-x", "claim_lease=0"),
            "invalid value '0' for -x claim_lease",
        ),
    ],
)
def test_claiming_bad_input_fails_before_any_sql(
    project: Callable[..., Project], args: tuple[str, ...], error: str
) -> None:
    proj = project("multitenant")
    proj.revision("r1", upgrade=ONCE)
    result = proj.alembic(
        "-x", "tenant=all", *args, "upgrade", "head", ok=False, process=True
    )
    assert result.code == 255
    assert error in result.stdout, result.stdout
    assert not (proj.root / "tenants").exists()


def _listed(
    project: Callable[..., Project], count: int, **options: str
) -> tuple[Project, list[str]]:
    """A SQLite fleet of *count* listed tenants, revision r1 to run."""
    proj = project("multitenant")
    names = _names(count)
    proj.set_option("tenants", ", ".join(names))
    for key, value in options.items():
        proj.set_option(key, value)
    proj.revision("r1", upgrade=ONCE)
    return proj, names


def _sections(output: str) -> list[str]:
    return re.findall(r"^-- Tenant (\w+):", output, re.M)


@pytest.mark.orchestration
def test_offline_selects_as_an_online_run_does(
    project: Callable[..., Project],
) -> None:
    """``--sql`` takes exclusions, patterns and shards as online runs do, and
    refuses in one line what it cannot do."""
    proj, names = _listed(project, 6)
    sql = ("upgrade", "head", "--sql")
    out = proj.alembic("-x", "tenant=all,!t0002", *sql).stdout
    assert _sections(out) == [n for n in names if n != "t0002"]
    halves = [
        _sections(proj.alembic("-x", "tenant=all", "-x", f"shard={k}/2", *sql).stdout)
        for k in (0, 1)
    ]
    assert sorted(halves[0] + halves[1]) == names
    assert not set(halves[0]) & set(halves[1])
    for args, error in [
        (("-x", "tenant=zz*"), "FAILED: -x tenant: the pattern 'zz*' matches none"),
        (
            ("-x", "tenant=all", "-x", "rollout=t0000; rest"),
            "FAILED: -x rollout runs waves one after another",
        ),
        (
            ("-x", "tenant=all", "-x", "shard=claim", "-x", "run=r"),
            "FAILED: -x shard=claim claims tenants from the database",
        ),
        (("-x", "tenant=failed"), "FAILED: -x tenant=failed reads the run record"),
    ]:
        failed = proj.alembic(*args, *sql, ok=False, process=True)
        assert failed.code == 255
        assert error in failed.stdout, failed.stdout
    proj.set_option("rollout", "t0000; rest")
    warned = proj.alembic("-x", "tenant=all", *sql, process=True)
    assert "rollout (in [alembic]) does not apply offline" in warned.stderr
    assert _sections(warned.stdout) == names


@pytest.mark.orchestration
def test_a_canary_in_another_shard_is_an_empty_wave(
    project: Callable[..., Project],
) -> None:
    proj, _ = _listed(project, 6, rollout="t0000; rest")
    holder = next(k for k in (0, 1) if in_shard("t0000", k, 2))
    other = f"{1 - holder}/2"
    plan = proj.alembic(
        "-x", "tenant=all", "-x", f"shard={holder}/2", "-x", "plan=true",
        "upgrade", "head", process=True,
    )  # fmt: skip
    assert "Plan: rollout in 2 waves: wave 1 of 2 (t0000): 1 tenant" in plan.stderr
    done = proj.alembic(
        "-x", "tenant=all", "-x", f"shard={other}", "upgrade", "head", process=True
    )
    assert (
        "rollout wave 1 (t0000): 't0000' is not among the tenants of this run"
        " (a shard): that wave is empty here"
    ) in done.stderr
    bad = proj.alembic(
        "-x", "tenant=all", "-x", "rollout=nobody; rest", "-x", "plan=true",
        "upgrade", "head", ok=False, process=True,
    )  # fmt: skip
    assert "'nobody' matches none of the tenants of this run" in bad.stdout


@pytest.mark.orchestration
def test_shards_that_never_ran_are_named_and_resumed(
    project: Callable[..., Project],
) -> None:
    """A Job whose JOB_COMPLETIONS says 4 while 2 pods run: ``current`` names
    the shards no run took, ``-x tenant=failed`` migrates their tenants."""
    proj, names = _listed(project, 12)
    for k in (0, 1):
        proj.alembic("-x", "tenant=all", "-x", f"shard={k}/4", "upgrade", "head")
    left = sorted(n for n in names if not any(in_shard(n, k, 4) for k in (0, 1)))
    missing = sorted({k for n in left for k in (2, 3) if in_shard(n, k, 4)})
    status = proj.alembic("-x", "tenant=all", "current", process=True)
    shown = ", ".join(f"{k}/4" for k in missing)
    assert f"never ran: {len(left)} known tenant" in status.stderr
    assert f"{shown} of the runs to" in status.stderr
    resumed = proj.alembic("-x", "tenant=failed", "upgrade", "head", process=True)
    assert sorted(re.findall(r"\] (t\d+): upgraded", resumed.stderr)) == left
    after = proj.alembic("-x", "tenant=all", "current", process=True)
    assert "never ran" not in after.stderr
    assert f"Tenants: {len(names)} total: {len(names)} at head" in after.stderr


@pytest.mark.orchestration
def test_shards_of_different_counts_are_named(
    project: Callable[..., Project],
) -> None:
    proj, _ = _listed(project, 12)
    proj.alembic("-x", "tenant=all", "-x", "shard=0/2", "upgrade", "head")
    proj.alembic("-x", "tenant=all", "-x", "shard=1/4", "upgrade", "head")
    status = proj.alembic("-x", "tenant=all", "current", process=True)
    assert "used different shard counts (N=2, N=4)" in status.stderr


@pytest.mark.parametrize("server", ["sqlite", "pg", "mysql"])
def test_a_working_runner_keeps_its_claim_past_the_lease(
    request: pytest.FixtureRequest, tmp_path: Path, server: str
) -> None:
    """The lease is renewed while a runner works (times kept to the
    millisecond on every server: MySQL's FLOAT would round them to minutes);
    a runner that stops renewing loses its tenant to another."""
    from alembic_recipes.tenants.driving.claims import Claims

    if server == "sqlite":
        url = f"sqlite:///{tmp_path}/record.db"
    else:
        db: ServerDB = request.getfixturevalue(server)
        url = db.driver_url("psycopg" if server == "pg" else "pymysql")
    first = Claims(url, None, "r1", lease=1.0)
    other = Claims(url, None, "r1", lease=1.0)
    other.runner = "elsewhere:1"
    first.join([(1, "rest", ["a", "b"])], lambda names: None)
    with first:
        assert first.claim() is not None
        time.sleep(2.5)  # past two leases: renewed meanwhile
        with other:
            taken = other.claim()
            assert taken is not None and taken.tenant == "b"
            assert other.claim() is None  # "a" is still held, "b" its own
    again = other.claim()
    assert again is not None and again.tenant == "a"
    other.engine.dispose()


SKEWED = """\
import time

_machine = time.time
time.time = lambda: _machine() + {offset}  # this machine's clock is off
"""


@pytest.mark.concurrency
@pytest.mark.parametrize("offset", [600, -600], ids=["ahead", "behind"])
def test_runners_whose_clocks_disagree_take_no_live_claim_over(
    project: Callable[..., Project], pg: ServerDB, tmp_path: Path, offset: int
) -> None:
    """Two runners, one on a machine whose clock is 10 minutes ahead (or
    behind) and a lease of 5 s: leases are kept on the database's clock, so
    neither takes over a tenant the other is migrating -- no "taken over"
    line -- and each tenant is migrated once."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    names = _names(24)
    proj.set_option("tenants", ", ".join(names))
    proj.revision("r1", upgrade=ONCE + '\nop.execute("SELECT pg_sleep(0.1)")')
    skewed = tmp_path / "skewed"
    skewed.mkdir()
    (skewed / "sitecustomize.py").write_text(SKEWED.format(offset=offset))
    env = cli_environment()
    off = {
        **env,
        "PYTHONPATH": os.pathsep.join([str(skewed), env.get("PYTHONPATH", "")]),
    }
    claim = ("-x", "tenant=all", "-x", "shard=claim", "-x", "claim_lease=5s")
    args = (*claim, "-x", "run=skew", "upgrade", "head")
    runs = _finish([spawn(proj, *args), spawn(proj, *args, env=off)])
    for code, err in runs:
        assert code == 0, err[-3000:]
        assert "taken over" not in err, err[-3000:]
    with pg.engine().connect() as conn:
        counts = {n: conn.scalar(sa.text(f"SELECT count(*) FROM {n}.a")) for n in names}
    assert set(counts.values()) == {1}
    assert set(_claims(pg.engine(), "skew").values()) == {"done"}
