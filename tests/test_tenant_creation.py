"""Creating tenant databases beside other runs and after interruptions
(database strategy): replicas and fleets creating the same new tenants take
turns; a database whose creating run was killed is never migrated as an
existing tenant."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import DEADLINE, spawn, together
from support.projects import Project
from support.servers import ServerDB

SLOW = {
    "postgresql": 'op.execute("SELECT pg_sleep(60)")',
    "sqlite": "import time\ntime.sleep(60)",
    "mysql": "import time\ntime.sleep(60)",  # the session idles: gone with us
}


def _databases(pg: ServerDB) -> set[str]:
    with pg.engine().connect() as conn:
        return set(conn.scalars(sa.text("SELECT datname FROM pg_database")))


@pytest.fixture
def tenant_dbs(pg: ServerDB) -> Iterator[Callable[[str], sa.URL]]:
    """The URL of tenant NAME's database beside *pg*; all dropped afterwards."""
    made: list[str] = []

    def url(name: str) -> sa.URL:
        made.append(f"{pg.url.database}_{name}")
        return pg.url.set(database=made[-1])

    yield url
    with pg.engine().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in made:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _two_fleets_at_once(proj: Project) -> None:
    """Start two fleet upgrades together (one with two workers); both succeed."""
    fleets = [
        spawn(proj, "-x", "tenant=all", "upgrade", "head"),
        spawn(proj, "-x", "tenant=all", "-x", "workers=2", "upgrade", "head"),
    ]
    for fleet in fleets:
        _, err = fleet.communicate(timeout=DEADLINE)
        assert fleet.returncode == 0, err


def _state(url: sa.URL) -> tuple[list[str], bool]:
    """A tenant database's versions, and whether it holds the creating mark."""
    driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else None
    engine = sa.create_engine(url.set(drivername=driver or "mysql+pymysql"))
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            versions = (
                list(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))
                if inspector.has_table("alembic_version")
                else []
            )
            return versions, inspector.has_table("alembic_recipes_creating")
    finally:
        engine.dispose()


@pytest.mark.concurrency
def test_replicas_and_fleets_creating_the_same_tenants_take_turns(
    project: Callable[..., Project],
    pg: ServerDB,
    tenant_dbs: Callable[[str], sa.URL],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = project("multitenant", url=pg.driver_url("psycopg") + "_{tenant}")
    monkeypatch.chdir(proj.root)
    proj.set_option("tenants", "t1, t2, t3, t4")
    head = proj.revision(
        "r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))'
    )
    urls = {name: tenant_dbs(name) for name in ("acme", "t1", "t2", "t3", "t4")}
    # four replicas start at once for one new tenant
    runs = together(
        proj, 4, "-x", "tenant=acme", "-x", "create=true", "upgrade", "head"
    )
    assert [r.code for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
    assert _state(urls["acme"]) == ([head], False)
    assert sum("upgraded base ->" in r.stderr or "Running upgrade" in r.stderr
               for r in runs) == 1  # fmt: skip
    # two fleets (one with workers) start at once on four new tenants
    _two_fleets_at_once(proj)
    for name in ("t1", "t2", "t3", "t4"):
        assert _state(urls[name]) == ([head], False)


def _wait_for(found: Callable[[], bool], process: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while not found():
        assert time.monotonic() < deadline, "the run never got that far"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        "sqlite",
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
@pytest.mark.orchestration
def test_a_database_whose_creating_run_was_killed_is_never_taken_for_a_tenant(
    project: Callable[..., Project],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    if backend == "postgresql":
        pg: ServerDB = request.getfixturevalue("pg")
        url = request.getfixturevalue("tenant_dbs")("newco")
        proj = project("multitenant", url=pg.driver_url("psycopg") + "_{tenant}")

        def exists() -> bool:
            return url.database in _databases(pg)

        def marked() -> bool:
            return exists() and _state(url)[1]

    elif backend == "mysql":
        my: ServerDB = request.getfixturevalue("mysql")
        url = my.url.set(database=f"{my.url.database}_newco")
        request.addfinalizer(lambda: _drop_mysql(my, [str(url.database)]))
        proj = project("multitenant", url=my.driver_url("pymysql") + "_{tenant}")

        def exists() -> bool:
            return url.database in _mysql_databases(my)

        def marked() -> bool:
            return exists() and _state(url)[1]

    else:
        proj = project("multitenant")  # tenants/{tenant}.db
        path = proj.root / "tenants" / "newco.db"

        def exists() -> bool:
            return path.exists()

        def marked() -> bool:
            if not path.exists() or path.stat().st_size == 0:
                return False
            engine = sa.create_engine(f"sqlite:///{path}")
            try:
                with engine.connect() as conn:
                    return sa.inspect(conn).has_table("alembic_recipes_creating")
            finally:
                engine.dispose()

    monkeypatch.chdir(proj.root)
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    slow = proj.revision("r2", upgrade=SLOW[backend])
    run = spawn(proj, "-x", "tenant=newco", "-x", "create=true", "upgrade", "head")
    try:
        _wait_for(marked, run)
        time.sleep(0.5)  # inside its first migration
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.communicate(timeout=DEADLINE)
    assert exists()  # left behind, marked as unfinished
    # a run that may not create: it removes what was left, migrates nothing
    later = proj.alembic("-x", "tenant=newco", "upgrade", "head", ok=False)
    assert "did not finish its first migration (interrupted); removed" in (later.stderr)
    assert "tenant 'newco': database does not exist" in later.stdout
    assert not exists()
    # where creating is allowed, it is created again and migrated
    revision_file = proj.revision_file(slow)
    fast = revision_file.read_text().replace(SLOW[backend].splitlines()[-1], "pass")
    revision_file.write_text(fast)
    done = proj.alembic("-x", "tenant=newco", "-x", "create=true", "upgrade", "head")
    assert "upgraded base ->" in done.stderr or "Running upgrade" in done.stderr
    assert not marked() and exists()


@pytest.mark.orchestration
def test_a_database_created_by_hand_is_still_a_tenant(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    (proj.root / "tenants").mkdir()
    (proj.root / "tenants" / "byhand.db").touch()  # an empty database, no mark
    out = proj.alembic("-x", "tenant=byhand", "upgrade", "head").stderr
    assert "Running upgrade" in out


def _mysql_databases(my: ServerDB) -> set[str]:
    with my.engine().connect() as conn:
        return set(conn.scalars(sa.text("SHOW DATABASES")))


def _drop_mysql(my: ServerDB, names: list[str]) -> None:
    with my.engine().connect() as conn:
        for name in names:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")


def test_mariadb_database_per_tenant(
    project: Callable[..., Project],
    mysql: ServerDB,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = mysql.url.database
    names = [f"{base}_{t}" for t in ("a1", "a2", "a3", "shared")]
    request.addfinalizer(lambda: _drop_mysql(mysql, names))
    proj = project("multitenant", url=mysql.driver_url("pymysql") + "_{tenant}")
    monkeypatch.chdir(proj.root)
    proj.set_option("tenants", "a1, a2")
    proj.set_option("shared_scope", "shared")  # where the run record lives
    head = proj.revision(
        "r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))'
    )
    status = proj.alembic("-x", "tenant=all", "current").stderr
    assert "Revisions: 2 at base (1 behind)" in status  # missing: at base
    assert not set(names) & _mysql_databases(mysql)  # and nothing created
    _two_fleets_at_once(proj)
    for name in names[:2]:
        assert _state(mysql.url.set(database=name)) == ([head], False)
    boom = proj.revision("boom", upgrade="undefined_helper()")
    failed = proj.alembic("-x", "tenant=a3", "-x", "create=true", "upgrade", "head",
                          ok=False)  # fmt: skip
    assert "NameError" in failed.output
    assert names[2] not in _mysql_databases(mysql)  # removed again
    proj.alembic("-x", "tenant=all", "-x", "continue=true", "upgrade", "head", ok=False)
    with mysql.engine().connect() as conn:  # the record, in the shared database
        rows = conn.execute(
            sa.text(
                f"SELECT tenant, status FROM {base}_shared.alembic_recipes_fleet_run"
            )
        ).all()
    assert dict(rows) == {"a1": "failed", "a2": "failed"}
    revision_file = proj.revision_file(boom)
    revision_file.write_text(
        revision_file.read_text().replace("undefined_helper()", "pass")
    )
    resumed = proj.alembic("-x", "tenant=failed", "-x", "workers=2", "upgrade", "head")
    assert "Tenants: 2 total: 2 upgraded" in resumed.stderr
