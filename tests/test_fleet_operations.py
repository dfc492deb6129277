"""Operating a fleet: selection with patterns and exclusions, shards run as
concurrent processes, the run record (-x report=PATH), the plan, and the
revision histogram of ``current``."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic_recipes.tenants.selection.selection import in_shard, resolve
from support.processes import DEADLINE, cli_environment, on_terminal, spawn
from support.projects import Project, use_models
from support.servers import ServerDB, throwaway_on

NAMES = ["t001", "t002", "t003", "t004", "t005", "t006", "demo1", "demo2"]


def _schemas(pg: ServerDB) -> dict[str, str | None]:
    """Each tenant schema's version (None: no version table)."""
    with pg.engine().connect() as conn:
        found = {}
        for name in sa.inspect(conn).get_schema_names():
            if name in NAMES:
                has = sa.inspect(conn).has_table("alembic_version", schema=name)
                q = f"SELECT version_num FROM {name}.alembic_version"
                found[name] = conn.scalar(sa.text(q)) if has else None
        return found


@pytest.fixture
def fleet(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, str, str]:
    """Eight listed tenants (schemas created on first upgrade), two revisions."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", ", ".join(NAMES))
    monkeypatch.chdir(proj.root)
    r1 = proj.revision(
        "r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))'
    )
    r2 = proj.revision(
        "r2", upgrade='op.create_table("b", sa.Column("id", sa.Integer))'
    )
    return proj, r1, r2


@pytest.mark.orchestration
def test_patterns_and_exclusions_select_known_tenants(
    fleet: tuple[Project, str, str], pg: ServerDB
) -> None:
    proj, _, r2 = fleet
    out = proj.alembic("-x", "tenant=all,!demo*", "upgrade", "head").stderr
    assert "Tenants: 6 total: 6 upgraded" in out
    assert _schemas(pg) == {f"t00{i}": r2 for i in range(1, 7)}
    out = proj.alembic("-x", "tenant=t00[12],demo1", "upgrade", "head").stderr
    assert "[3/3] demo1: upgraded" in out and "2 already at head" in out
    for bad, said in (
        ("tenant=acme-?", "the pattern 'acme-?' matches none of the 8 known tenants"),
        ("tenant=all,!x*", "'!x*' excludes none of the 8 selected tenants"),
        ("tenant=t0*,!t0*", "the exclusions leave no tenant to run"),
        ("tenant=T0*", "invalid tenant pattern 'T0*' from -x tenant"),
    ):
        run = proj.alembic("-x", bad, "upgrade", "head", ok=False)
        assert run.code == 255 and said in run.stdout, run.output
    assert "demo2" not in _schemas(pg)  # nothing was sent for it


@pytest.mark.orchestration
def test_shards_are_disjoint_cover_everything_and_stay_put() -> None:
    names = [f"tenant_{i:05d}" for i in range(2000)]
    shards = {name: [k for k in range(7) if in_shard(name, k, 7)] for name in names}
    assert all(len(found) == 1 for found in shards.values())
    sizes = [sum(1 for f in shards.values() if f == [k]) for k in range(7)]
    assert min(sizes) > 2000 / 7 * 0.8  # spread evenly enough
    more = [*names, *(f"new_{i}" for i in range(50))]
    assert all(in_shard(n, shards[n][0], 7) for n in more if n in shards)
    assert resolve(["all"], ["tenant_0000*"], names[:20]) == names[10:20]


@pytest.mark.orchestration
def test_shards_as_concurrent_processes_migrate_each_tenant_once(
    fleet: tuple[Project, str, str], pg: ServerDB, tmp_path: Path
) -> None:
    proj, _, r2 = fleet
    env = cli_environment()
    processes = []
    for k in range(3):  # as a Kubernetes Indexed Job's pods: shard=auto
        env_k = {**env, "JOB_COMPLETION_INDEX": str(k), "JOB_COMPLETIONS": "3"}
        report = tmp_path / f"shard{k}.jsonl"
        args = ["-x", "tenant=all", "-x", "shard=auto", "-x", f"report={report}"]
        processes.append(spawn(proj, *args, "upgrade", "head", env=env_k))
    for process in processes:
        _, err = process.communicate(timeout=DEADLINE)
        assert process.returncode == 0, err
    seen: list[str] = []
    for k in range(3):
        lines = [
            json.loads(x)
            for x in (tmp_path / f"shard{k}.jsonl").read_text().splitlines()
        ]
        *tenants, summary = lines
        assert summary["summary"] is True and summary["total"] == len(tenants)
        assert all(t["status"] == "upgraded" and t["to"] == r2 for t in tenants)
        seen += [t["tenant"] for t in tenants]
    assert sorted(seen) == sorted(NAMES)  # the union is the fleet, each once
    assert set(_schemas(pg).values()) == {r2}
    bad = proj.alembic(
        "-x", "tenant=all", "-x", "shard=3/3", "upgrade", "head", ok=False
    )
    assert (
        "invalid value '3/3' for -x shard: expected claim, K/N with 0 <= K < N"
        in bad.stdout
    )
    no_env = proj.alembic("-x", "tenant=all", "-x", "shard=auto", "current", ok=False)
    assert "-x shard=auto needs the environment variables JOB_COMPLETION_INDEX" in (
        no_env.stdout
    )


@pytest.mark.orchestration
def test_run_record_as_json_lines(
    fleet: tuple[Project, str, str], pg: ServerDB, tmp_path: Path
) -> None:
    proj, r1, r2 = fleet
    with pg.engine().begin() as conn:  # t003 will fail: its table "b" exists
        conn.exec_driver_sql("CREATE SCHEMA t003; CREATE TABLE t003.b (id int)")
    report = tmp_path / "run.jsonl"
    proj.alembic("-x", "tenant=t001", "upgrade", r1)
    run = proj.alembic(
        "-x", "tenant=t001,t002,t003,t004", "-x", f"report={report}", "upgrade", "head",
        ok=False,
    )  # fmt: skip
    assert f"Run record: {report}" in run.stderr
    *tenants, summary = [json.loads(x) for x in report.read_text().splitlines()]
    by_name = {t["tenant"]: t for t in tenants}
    assert list(by_name) == ["t001", "t002", "t003", "t004"]
    assert by_name["t001"]["status"] == "upgraded"
    assert (by_name["t001"]["from"], by_name["t001"]["to"]) == (r1, r2)
    assert (by_name["t002"]["from"], by_name["t002"]["to"]) == ("base", r2)
    failed = by_name["t003"]
    assert failed["status"] == "failed" and "DuplicateTable" in failed["error"]
    assert "\n" not in failed["error"] and failed["seconds"] >= 0
    assert by_name["t004"]["status"] == "not attempted"
    assert summary["failed"] == ["t003"] and summary["total"] == 4
    assert summary["statuses"] == {"upgraded": 2, "failed": 1, "not attempted": 1}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", by_name["t001"]["started"])


@pytest.mark.orchestration
def test_plan_changes_nothing(fleet: tuple[Project, str, str], pg: ServerDB) -> None:
    proj, r1, r2 = fleet
    proj.alembic("-x", "tenant=t001,t002", "upgrade", r1)
    proj.alembic("-x", "tenant=t003", "upgrade", "head")
    before = _schemas(pg)
    out = proj.alembic(
        "-x", "tenant=t00[1-4]", "-x", "plan=true", "upgrade", "head"
    ).stderr  # fmt: skip
    assert f"[1/4] t001: {r1} -> {r2}: would upgrade 1 revision" in out
    assert f"[3/4] t003: {r2}: nothing to run" in out
    assert f"[4/4] t004: missing: would be created, then base -> {r2}: would" in out
    assert (
        "Plan: 4 tenants: 3 would upgrade, 1 nothing to run; nothing was changed" in out
    )
    assert _schemas(pg) == before  # t004 not even created


@pytest.mark.orchestration
def test_current_ends_with_a_histogram(
    fleet: tuple[Project, str, str], pg: ServerDB, tmp_path: Path
) -> None:
    proj, r1, r2 = fleet
    with pg.engine().begin() as conn:  # t003 fails on its table "b"
        conn.exec_driver_sql("CREATE SCHEMA t003; CREATE TABLE t003.b (id int)")
    proj.alembic(
        "-x", "tenant=t00*", "-x", "continue=true", "upgrade", "head", ok=False
    )
    proj.alembic("-x", "tenant=demo*", "upgrade", r1)
    report = tmp_path / "current.jsonl"
    run = proj.alembic("-x", "tenant=all", "-x", f"report={report}", "current")
    out = run.stdout.splitlines()  # as stock current prints them, labelled
    assert out[:2] == [f"t001: {r2} (head)", f"t002: {r2} (head)"]
    assert f"demo1: {r1}" in out and not any("t003" in line for line in out)
    verbose = proj.alembic("-x", "tenant=t001,t002", "current", "--verbose").stdout
    assert "t001: Current revision(s) for postgresql+psycopg://" in verbose
    out = run.stderr
    assert (
        f"Revisions: 5 at {r2} (head); 2 at {r1} (1 behind); 1 at base (2 behind);"
        " 1 unfinished in the run record (t003)"
    ) in out
    *tenants, summary = [json.loads(x) for x in report.read_text().splitlines()]
    assert {t["tenant"]: t["to"] for t in tenants}["demo1"] == r1
    assert summary["unfinished_last_run"] == ["t003"]


def _xmin(pg: ServerDB, schema: str) -> str:
    """The version row's transaction id: unchanged unless the row was written."""
    with pg.engine().connect() as conn:
        return str(conn.scalar(sa.text(f"SELECT xmin FROM {schema}.alembic_version")))


@pytest.mark.orchestration
def test_rerun_at_head_writes_no_record(
    fleet: tuple[Project, str, str], pg: ServerDB
) -> None:
    """A rerun over a fleet at head leaves the record's rows as they are (no
    write, no commit); a tenant recorded as failed but found at head gets its
    new row."""
    proj, _, r2 = fleet
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    query = sa.text("SELECT tenant, xmin::text FROM public.alembic_recipes_fleet_run")
    with pg.engine().connect() as conn:
        before = dict(conn.execute(query).all())
    with pg.engine().begin() as conn:
        conn.exec_driver_sql(
            "UPDATE public.alembic_recipes_fleet_run SET status = 'failed'"
            " WHERE tenant = 't003'"
        )
    with pg.engine().connect() as conn:
        before["t003"] = dict(conn.execute(query).all())["t003"]
    out = proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "Tenants: 8 total: 8 already at head" in out
    with pg.engine().connect() as conn:
        after = dict(conn.execute(query).all())
        status = conn.scalar(
            sa.text(
                "SELECT status || ' ' || to_revision FROM"
                " public.alembic_recipes_fleet_run WHERE tenant = 't003'"
            )
        )
    assert {n: x for n, x in after.items() if n != "t003"} == {
        n: x for n, x in before.items() if n != "t003"
    }
    assert after["t003"] != before["t003"] and status == f"already at head {r2}"


@pytest.mark.orchestration
def test_resume_runs_only_what_failed_or_was_not_attempted(
    fleet: tuple[Project, str, str], pg: ServerDB
) -> None:
    proj, _, r2 = fleet
    none_yet = proj.alembic("-x", "tenant=failed", "upgrade", "head", ok=False)
    assert "no fleet run of this environment is recorded yet" in none_yet.stdout
    with pg.engine().begin() as conn:  # t003 fails on its table "b"
        conn.exec_driver_sql("CREATE SCHEMA t003; CREATE TABLE t003.b (id int)")
    run = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert "Tenants: 8 total: 2 upgraded, 1 failed, 5 not attempted" in run.stderr
    with pg.engine().connect() as conn:  # the record, read back from the database
        rows = dict(
            conn.execute(
                sa.text("SELECT tenant, status FROM public.alembic_recipes_fleet_run")
            ).all()
        )
    assert rows == {
        "t001": "upgraded", "t002": "upgraded", "t003": "failed",
        **{n: "not attempted" for n in NAMES[3:]},
    }  # fmt: skip
    untouched = {name: _xmin(pg, name) for name in ("t001", "t002")}
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("DROP TABLE t003.b")
    out = proj.alembic("-x", "tenant=failed", "upgrade", "head").stderr
    assert "Tenants: 6 total: 6 upgraded" in out
    assert "t001" not in out and "t002" not in out
    assert {name: _xmin(pg, name) for name in untouched} == untouched
    assert set(_schemas(pg).values()) == {r2}
    again = proj.alembic("-x", "tenant=failed", "upgrade", "head").stderr
    assert "every tenant of the run record is finished and at the target" in again


@pytest.mark.orchestration
def test_resume_with_tenant_databases_on_sqlite(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")  # acme, globex: SQLite files in tenants/
    monkeypatch.chdir(proj.root)
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    (proj.root / "tenants").mkdir()
    engine = sa.create_engine(f"sqlite:///{proj.root / 'tenants' / 'acme.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE a (id INTEGER)")
    engine.dispose()
    proj.alembic("-x", "tenant=all", "-x", "continue=true", "upgrade", "head", ok=False)
    assert (proj.root / "tenants" / "alembic_recipes_fleet_run.db").exists()
    (proj.root / "tenants" / "acme.db").unlink()
    out = proj.alembic("-x", "tenant=failed", "upgrade", "head").stderr
    assert "[1/1] acme: upgraded" in out and "globex" not in out


def _schema_dump(url: sa.URL) -> list[str]:
    done = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "-T", "alembic_recipes_fleet_run",
         "-h", str(url.host), "-p",
         str(url.port or 5432), "-U", str(url.username), str(url.database)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [
        line
        for line in done.stdout.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict"))
    ]


def test_offline_fleet_script_creates_the_schemas_on_a_fresh_database(
    fleet: tuple[Project, str, str], pg: ServerDB
) -> None:
    proj, _, _ = fleet
    proj.set_option("tenants", "t001, t002")
    proj.alembic("-x", "tenant=all", "upgrade", "head")  # online, on pg
    script = proj.alembic("-x", "tenant=all", "upgrade", "head", "--sql").stdout
    assert 'CREATE SCHEMA IF NOT EXISTS "t001";' in script
    never = proj.alembic(
        "-x", "tenant=all", "-x", "create=false", "upgrade", "head", "--sql"
    ).stdout  # fmt: skip
    assert "CREATE SCHEMA" not in never
    databases = throwaway_on(pg.url)
    fresh = next(databases)
    try:
        subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-q", "-h", str(fresh.url.host), "-U",
             str(fresh.url.username), "-d", str(fresh.url.database)],
            input=script, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        # the same schema as the online run (which also wrote its run record)
        assert _schema_dump(fresh.url) == _schema_dump(pg.url)
    finally:
        databases.close()  # drops it


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.orchestration
def test_rollout_waves_stop_at_a_failing_wave(
    fleet: tuple[Project, str, str], pg: ServerDB, tmp_path: Path, workers: str
) -> None:
    proj, _, r2 = fleet
    with pg.engine().begin() as conn:  # t003 fails on its table "b"
        conn.exec_driver_sql("CREATE SCHEMA t003; CREATE TABLE t003.b (id int)")
    proj.set_option("rollout", "t001; 50%%; rest")  # % doubled, as configparser has it
    report = tmp_path / "run.jsonl"
    args = ("-x", "tenant=all", "-x", f"workers={workers}", "-x", f"report={report}")
    run = proj.alembic(*args, "upgrade", "head", ok=False)
    out = run.stderr
    assert "Rollout: wave 1 of 3 (t001) done: 1 tenant, 0 failed" in out
    # 50% of the 7 left, rounded up: t002..t005, with t003 failing
    assert "Rollout: wave 2 of 3 (50%) had 1 failed tenant (max_failures = 0)" in out
    assert "rollout stopped at wave 2 of 3 (50%)" in out
    assert "rollout stopped at wave 2 of 3 (50%)" in run.stdout
    states = _schemas(pg)
    assert states["t001"] == r2 and states["t003"] is None
    assert "demo1" not in states and "demo2" not in states  # the last wave: not run
    *tenants, summary = [json.loads(x) for x in report.read_text().splitlines()]
    assert summary["stopped_at"] == "wave 2 of 3 (50%)"
    assert {t["tenant"] for t in tenants if t["status"] == "not attempted"} >= {
        "t006", "demo1", "demo2"
    }  # fmt: skip
    # tolerate one failure per wave: the rollout goes on to the end
    proj.set_option("max_failures", "1")
    again = proj.alembic(*args, "upgrade", "head", ok=False).stderr
    assert "Rollout: wave 3 of 3 (rest) done: 3 tenants, 0 failed" in again
    assert set(_schemas(pg).values()) == {r2, None}


@pytest.mark.orchestration
def test_rollout_is_checked_before_any_sql(fleet: tuple[Project, str, str]) -> None:
    proj, _, _ = fleet
    for bad, said in (
        ("10%; rest; t001", "'rest' must be last"),
        ("t001;;rest", "invalid value 't001;;rest' for -x rollout"),
        ("0%", "invalid value '0%' for -x rollout: expected a percentage"),
        ("T0*", "invalid tenant pattern 'T0*' from -x rollout"),
    ):
        run = proj.alembic("-x", "tenant=all", "-x", f"rollout={bad}", "upgrade",
                           "head", ok=False)  # fmt: skip
        assert run.code == 255 and said in run.stdout, (bad, run.output)


@pytest.mark.orchestration
def test_progress_lines_in_logs(fleet: tuple[Project, str, str]) -> None:
    proj, _, _ = fleet
    proj.revision("slow", upgrade='op.execute("SELECT pg_sleep(0.15)")')
    quiet = proj.alembic(
        "-x", "tenant=t00*", "-x", "progress_interval=0", "upgrade", "head"
    ).stderr  # fmt: skip
    assert "Progress:" not in quiet and "Tenants: 6 total: 6 upgraded" in quiet
    out = proj.alembic(
        "-x", "tenant=all", "-x", "progress_interval=100ms", "upgrade", "head"
    ).stderr  # fmt: skip
    done = re.findall(
        r"Progress: (\d)/8 tenants done \(0 failed\), [\d.]+ tenants/s, \d left,"
        r" ETA \d+ s",
        out,
    )
    assert done and all(1 <= int(n) <= 8 for n in done), out
    assert "[8/8] demo2: upgraded" in out  # the per-tenant lines stay


MODELS = """\
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table("a", metadata, sa.Column("id", sa.Integer))
sa.Table("b", metadata, sa.Column("id", sa.Integer))
"""


def test_check_over_the_fleet_finds_the_tenant_changed_by_hand(
    fleet: tuple[Project, str, str], pg: ServerDB, tmp_path: Path
) -> None:
    proj, r1, _ = fleet
    bare = proj.alembic("-x", "tenant=t00[1-3]", "check", ok=False)  # no models:
    assert bare.code == 255 and "env.py gives no models" in bare.stdout
    assert "[2/3]" not in bare.stderr  # one error, not one per tenant
    (proj.root / "models.py").write_text(MODELS)
    use_models(proj)
    proj.alembic("-x", "tenant=t00[1-3]", "upgrade", "head")
    proj.alembic("-x", "tenant=t004", "upgrade", r1)
    clean = proj.alembic("-x", "tenant=t00[1-3]", "check")
    assert "Tenants: 3 total: 3 no changes" in clean.stderr
    assert "No new upgrade operations detected." in clean.stdout
    with pg.engine().begin() as conn:  # a hot fix, by hand, on one tenant
        conn.exec_driver_sql("ALTER TABLE t002.b ADD COLUMN hotfix integer")
    report = tmp_path / "check.jsonl"
    run = proj.alembic(
        "-x", "tenant=t00[1-4]", "-x", f"report={report}", "check", ok=False
    )  # fmt: skip
    assert run.code == 255
    assert "[1/4] t001: no new upgrade operations detected" in run.stderr
    assert (
        "[2/4] t002: 1 new upgrade operation detected:\n"
        "    op.drop_column('b', 'hotfix')" in run.stderr
    )
    assert "[4/4] t004: FAILED" in run.stderr and "not up to date" in run.stderr
    assert (
        "check: 1 of 4 tenants differ from the target metadata: t002; 1 failed"
        in run.stdout
    )
    *tenants, summary = [json.loads(x) for x in report.read_text().splitlines()]
    by_name = {t["tenant"]: t for t in tenants}
    assert by_name["t002"]["diff"] == ["op.drop_column('b', 'hotfix')"]
    assert by_name["t001"]["status"] == "no changes" and by_name["t001"]["diff"] == []
    assert summary["statuses"] == {
        "no changes": 2, "differs from the models": 1, "failed": 1
    }  # fmt: skip
    with pg.engine().connect() as conn:  # check changed nothing
        columns = sa.inspect(conn).get_columns("b", schema="t002")
        assert [c["name"] for c in columns] == ["id", "hotfix"]
    one = proj.alembic("-x", "tenant=t002", "check", ok=False)  # stock's own words
    assert "New upgrade operations detected" in one.stdout


def test_check_over_tenant_databases(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")  # acme, globex: SQLite files in tenants/
    monkeypatch.chdir(proj.root)
    (proj.root / "models.py").write_text(MODELS)
    use_models(proj)
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    proj.revision("r2", upgrade='op.create_table("b", sa.Column("id", sa.Integer))')
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    engine = sa.create_engine(f"sqlite:///{proj.root / 'tenants' / 'globex.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE extra (id INTEGER)")
    engine.dispose()
    run = proj.alembic("-x", "tenant=all", "check", ok=False)
    assert "acme: no new upgrade operations detected" in run.stderr
    assert "globex: 1 new upgrade operation detected:\n    op.drop_table('extra')" in (
        run.stderr
    )
    assert "check: 1 of 2 tenants differ from the target metadata: globex" in run.stdout


@pytest.mark.orchestration
def test_progress_bar_on_a_terminal(
    fleet: tuple[Project, str, str], pg: ServerDB
) -> None:
    proj, _, _ = fleet
    with pg.engine().begin() as conn:  # t003 fails on its table "b"
        conn.exec_driver_sql("CREATE SCHEMA t003; CREATE TABLE t003.b (id int)")
    proj.set_option("rollout", "t001; rest")
    run = on_terminal(
        proj, "-x", "tenant=all", "-x", "continue=true", "upgrade", "head"
    )
    assert run.code == 255, run.stdout
    screen = run.stdout
    # one live line: done/total, rate, ETA, failed tenants, the wave
    assert re.search(r"\rTenants:\s+0%\|.*\| 0/8 \[00:00<\?", screen), screen
    assert re.search(
        r"\rTenants: 100%\|█+\| 8/8 \[[\d:]+<[\d:]+, +[\d.]+tenant/s, 1 failed,"
        r" wave 2 of 2 \(rest\)\]",
        screen,
    ), screen
    assert "wave 1 of 2 (t001)]" in screen
    # in place of the per-tenant lines; the failure in full, then the summary
    assert "[1/8] t001: upgraded" not in screen and "Running upgrade" not in screen
    assert "[3/8] t003: FAILED" in screen and "DuplicateTable" in screen
    assert "Tenants: 8 total: 7 upgraded, 1 failed" in screen
    assert screen.index("8/8") < screen.index("Tenants: 8 total")
    # asked for lines, a terminal gets lines
    lines = on_terminal(proj, "-x", "tenant=t00*", "-x", "progress=lines", "current")
    assert "[1/6] t001:" in lines.stdout and "Tenants:  " not in lines.stdout


@pytest.mark.orchestration
def test_progress_quiet_and_checked(fleet: tuple[Project, str, str]) -> None:
    proj, _, _ = fleet
    out = proj.alembic("-x", "tenant=all", "-x", "progress=quiet", "upgrade", "head")
    assert out.stderr.splitlines() == [
        "INFO  [alembic.recipes.tenants.records.report] Tenants: 8 total: 8 upgraded"
    ]
    plan = proj.alembic("-x", "tenant=all", "-x", "progress=quiet", "-x", "plan=true",
                        "upgrade", "head").stderr  # fmt: skip
    assert plan.splitlines()[-1].endswith(
        "Plan: 8 tenants: 8 nothing to run; nothing was changed"
    )
    for bad in ("fancy", " bar", "true"):
        run = proj.alembic("-x", f"progress={bad}", "-x", "tenant=all", "upgrade",
                           "head", ok=False)  # fmt: skip
        assert run.code == 255
        assert (
            f"invalid value {bad!r} for -x progress: expected one of auto, bar,"
            " lines, quiet" in run.stdout
        ), run.output
