"""Tenants on several servers (``servers = eu1, us1``): the shared PostgreSQL
and a second cluster each test starts on a free port -- and stops, mid-run,
where a server going down is the point."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from support.processes import DEADLINE, spawn
from support.projects import Project
from support.servers import Cluster, ServerDB, advisory_locks, throwaway_on

EU = [f"e{i:02}" for i in range(1, 7)]
US = [f"u{i:02}" for i in range(1, 7)]
PASSWORD = "s3cret-pw"  # trust auth: accepted, and must never be printed


def _two(proj: Project) -> list[str]:
    return [
        proj.revision(
            name,
            upgrade=f'op.create_table("{name}", sa.Column("id", sa.Integer,'
            " primary_key=True))",
            downgrade=f'op.drop_table("{name}")',
        )
        for name in ("a", "b")
    ]


@pytest.fixture
def second(pg_second: Cluster) -> Iterator[ServerDB]:
    """A database on the second server."""
    yield from throwaway_on(pg_second.url)


def _with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def _servers(proj: Project, **sections: dict[str, str]) -> None:
    """``servers = <names>`` and a ``[name]`` section per server."""
    proj.set_option("servers", ", ".join(sections))
    text = proj.ini.read_text()
    blocks = "".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()) + "\n"
        for name, options in sections.items()
    )
    proj.ini.write_text(
        text.replace("[post_write_hooks]", blocks + "[post_write_hooks]")
    )


def _versions(db: ServerDB, schemas: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with db.engine().connect() as conn:
        for schema in schemas:
            exists = conn.scalar(
                sa.text("SELECT to_regclass(:t) IS NOT NULL"),
                {"t": f"{schema}.alembic_version"},
            )
            rows = (
                conn.scalars(
                    sa.text(f"SELECT version_num FROM {schema}.alembic_version")
                )
                if exists
                else []
            )
            found[schema] = list(rows)
    return found


def _schemas(db: ServerDB) -> set[str]:
    with db.engine().connect() as conn:
        q = "SELECT schema_name FROM information_schema.schemata"
        return {str(s) for s in conn.scalars(sa.text(q))}


def _catalog(db: ServerDB, rows: list[tuple[str, str]]) -> None:
    with db.engine().begin() as conn:
        conn.exec_driver_sql("CREATE TABLE catalog (slug text, region text)")
        conn.execute(
            sa.text("INSERT INTO catalog VALUES (:s, :r)"),
            [{"s": s, "r": r} for s, r in rows],
        )


def _placed_by_catalog(
    proj: Project, pg: ServerDB, second: ServerDB, tenants_url: str
) -> None:
    """Schema tenants on servers eu1 (*pg*) and us1 (*second*), 6 each, as a
    catalog at *tenants_url* places them; the servers' URLs with a password."""
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("create_tenants", "known")
    proj.set_option("tenants_url", tenants_url)
    proj.set_option(
        "tenants_query", "SELECT slug, region FROM catalog ORDER BY region, slug"
    )
    _catalog(pg, [*[(n, "eu1") for n in EU], *[(n, "us1") for n in US]])
    _servers(
        proj,
        eu1={"sqlalchemy.url": _with_password(pg.driver_url("psycopg"))},
        us1={"sqlalchemy.url": _with_password(second.driver_url("psycopg"))},
    )


@pytest.mark.orchestration
@pytest.mark.parametrize("workers", ["1", "2"])
def test_schema_fleet_over_two_servers_one_stopped_mid_run(
    project: Callable[..., Project],
    pg: ServerDB,
    second: ServerDB,
    pg_second: Cluster,
    workers: str,
) -> None:
    """A catalog places 6 tenants on each server; serially, or with
    ``workers=2`` and ``server_workers=1``: both servers at once.  The second server is
    stopped mid-run: its tenants left fail one line each, the first server's
    all finish (``continue``), the summary and the record are per server; the
    password is never printed.  Started again, a rerun finishes the rest."""
    proj = project("multitenant", prepare=_two)
    head = proj.prepared[-1]
    slow = proj.revision(
        "slow", upgrade='op.execute("SELECT pg_sleep(0.25)")', downgrade="pass"
    )
    _placed_by_catalog(proj, pg, second, pg.driver_url("psycopg"))
    assert head != slow
    run = spawn(
        proj, "-x", "tenant=all", "-x", "continue=true", "-x", f"workers={workers}",
        "-x", "server_workers=1", "-x", f"report={proj.root / 'run.jsonl'}",
        "upgrade", "head",
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:  # two of us1's tenants done: stop it
        done = [v for v in _versions(second, US).values() if v == [slow]]
        if len(done) >= 2:
            break
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    pg_second.stop()
    out, err = run.communicate(timeout=DEADLINE)
    assert run.returncode != 0, err
    assert PASSWORD not in out + err
    assert "postgres:***@" in err

    assert _versions(pg, EU) == {name: [slow] for name in EU}  # eu1: all finished
    assert not _schemas(pg) & set(US)  # each tenant on its own server only
    failed = re.findall(r"\] (u\d+) \(us1\): FAILED", err)
    assert failed, err
    assert "Traceback" not in err  # one line each
    assert len(re.findall(r"\(us1\): FAILED", err)) == len(failed)
    assert re.search(r"Server eu1: 6 tenants: 6 upgraded", err), err
    assert re.search(r"Server us1: 6 tenants: .*failed", err), err
    lines = [json.loads(x) for x in (proj.root / "run.jsonl").read_text().splitlines()]
    assert {e["tenant"]: e["server"] for e in lines[:-1]} == {
        **dict.fromkeys(EU, "eu1"),
        **dict.fromkeys(US, "us1"),
    }
    assert lines[-1]["servers"]["eu1"] == {"upgraded": 6}
    with pg.engine().connect() as conn:  # eu1's record: its tenants, and
        q = "SELECT tenant, status FROM alembic_recipes_fleet_run"  # us1's failures
        rows = dict(conn.execute(sa.text(q)).all())
    assert rows == {**dict.fromkeys(EU, "upgraded"), **dict.fromkeys(failed, "failed")}

    pg_second.start()  # the resume finds us1's unfinished tenants in both records
    again = proj.alembic(
        "-x", "tenant=failed", "-x", "continue=true", "upgrade", "head"
    )
    assert not any(name in again.stderr for name in EU)
    assert f"Tenants: {6 - len(done)} total: {6 - len(done)} upgraded" in again.stderr
    assert _versions(second, US) == {name: [slow] for name in US}
    nothing = proj.alembic("-x", "tenant=failed", "upgrade", "head").stderr
    assert "Tenants: 0 total" in nothing
    current = proj.alembic("current")
    for name in EU + US:
        assert f"{name}: {slow} (head)" in current.stdout


def test_unreachable_server_fails_its_own_tenants(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    """A server that does not answer at the start: each of its tenants fails
    with one line naming it (password masked); with ``continue`` the other
    server's tenants migrate, without it the run stops at the first."""
    proj = project("multitenant", prepare=_two)
    head = proj.prepared[-1]
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("create_tenants", "true")
    closed = make_url(pg.driver_url("psycopg")).set(
        port=1, password=PASSWORD
    )  # nothing listens
    _servers(
        proj,
        eu1={"sqlalchemy.url": pg.driver_url("psycopg"), "tenants": "e01, e02"},
        us1={
            "sqlalchemy.url": closed.render_as_string(hide_password=False),
            "tenants": "u01, u02",
        },
    )
    stopped = proj.alembic("-x", "tenant=u01,e01,u02,e02", "upgrade", "head", ok=False)
    assert PASSWORD not in stopped.output
    assert (
        "server us1 (postgresql+psycopg://postgres:***@127.0.0.1:1/" in stopped.output
    )
    assert "2 not attempted" in stopped.stderr or "not attempted" in stopped.stderr
    kept = proj.alembic(
        "-x", "tenant=all", "-x", "continue=true", "upgrade", "head", ok=False
    )
    assert PASSWORD not in kept.output
    assert (
        len(
            re.findall(r"\] u0\d \(us1\): FAILED after \d+ ms: server us1", kept.stderr)
        )
        == 2
    )
    assert _versions(pg, ["e01", "e02"]) == {"e01": [head], "e02": [head]}
    assert "2 of 4 tenants failed: u01, u02" in kept.output


def test_database_strategy_over_two_servers(
    project: Callable[..., Project],
    pg: ServerDB,
    second: ServerDB,
    pg_second: Cluster,
) -> None:
    """Database per tenant on two servers: each tenant's database is created on
    its own server; ``-x server=`` runs one; ``current`` reads both."""
    proj = project("multitenant", prepare=_two)
    head = proj.prepared[-1]
    prefix = make_url(pg.driver_url("psycopg")).database
    eu = pg.driver_url("psycopg").replace(f"/{prefix}", f"/{prefix}_{{tenant}}")
    us = second.driver_url("psycopg").replace(
        f"/{make_url(second.driver_url('psycopg')).database}", f"/{prefix}_{{tenant}}"
    )
    proj.set_option("tenant_strategy", "database")
    proj.set_option("create_tenants", "known")
    _servers(
        proj,
        eu1={"sqlalchemy.url": eu, "tenants": "e01, e02"},
        us1={"sqlalchemy.url": us, "tenants": "u01"},
    )

    def databases(url: str) -> set[str]:
        with sa.create_engine(url, poolclass=sa.pool.NullPool).connect() as conn:
            q = "SELECT datname FROM pg_database WHERE datname LIKE :p"
            return set(conn.scalars(sa.text(q), {"p": f"{prefix}_%"}))

    try:
        only = proj.alembic("-x", "tenant=all", "-x", "server=us1", "upgrade", "head")
        assert "u01 (us1): upgraded" in only.stderr and "(eu1)" not in only.stderr
        proj.alembic("-x", "tenant=all", "-x", "workers=2", "upgrade", "head")
        assert databases(pg.driver_url("psycopg")) == {f"{prefix}_e01", f"{prefix}_e02"}
        assert databases(second.driver_url("psycopg")) == {f"{prefix}_u01"}
        u01 = make_url(second.driver_url("psycopg")).set(database=f"{prefix}_u01")
        with sa.create_engine(u01, poolclass=sa.pool.NullPool).connect() as conn:
            assert (
                conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head
            )
        current = proj.alembic("current")
        for name in ("e01", "e02", "u01"):
            assert f"{name}: {head} (head)" in current.stdout
    finally:
        for url in (pg.driver_url("psycopg"), second.driver_url("psycopg")):
            engine = sa.create_engine(
                url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
            )
            with engine.connect() as conn:
                for name in databases(url):
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.driver
def test_offline_sql_labels_each_tenants_server(
    project: Callable[..., Project],
) -> None:
    """``--sql`` connects to nothing: the servers' lists say where each
    tenant is, and each tenant's part of the script says so."""
    proj = project("multitenant", prepare=_two)
    proj.set_option("tenant_strategy", "schema")
    url = "postgresql://postgres:" + PASSWORD + "@db-{n}.example/app"
    _servers(
        proj,
        eu1={"sqlalchemy.url": url.format(n="eu"), "tenants": "e01"},
        us1={"sqlalchemy.url": url.format(n="us"), "tenants": "u01"},
    )
    out = proj.alembic("-x", "tenant=all", "upgrade", "head", "--sql").stdout
    assert (
        "-- Tenant e01 on server eu1 (postgresql://postgres:***@db-eu.example/app)"
        in out
    )
    assert (
        "-- Tenant u01 on server us1 (postgresql://postgres:***@db-us.example/app)"
        in out
    )
    assert PASSWORD not in out


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ({"servers": "eu1, us1"}, ["-x", "server=ap1"],
         "invalid -x server=ap1: expected names listed in servers (eu1, us1)"),
        ({"servers": "eu1, eu1"}, [], "servers lists eu1 more than once"),
        ({"servers": "eu1, ap/1"}, [], "'ap/1'"),
        ({"servers": "eu1, ap1"}, [], "server 'ap1' has no [ap1] section"),
        ({}, ["-x", "tenant=x01"], "tenant 'x01' is on none of the servers (eu1, us1)"),
        ({"us1:tenants": "u01, e01"}, [],
         "tenant 'e01' is known on servers eu1 and us1"),
        ({}, ["-x", "tenant=all", "-x", "server_workers=x"],
         "invalid value 'x' for server_workers: expected a whole number"),
        ({}, ["-x", "tenant=all", "-x", "shard=claim", "-x", "run=r1"],
         "-x shard=claim over servers keeps its claims in the catalog"),
    ],
)  # fmt: skip
@pytest.mark.orchestration
def test_bad_server_configuration_is_one_line(
    project: Callable[..., Project],
    pg: ServerDB,
    setup: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    proj = project("multitenant", prepare=_two)
    proj.set_option("tenant_strategy", "schema")
    _servers(
        proj,
        eu1={"sqlalchemy.url": pg.driver_url("psycopg"), "tenants": "e01"},
        us1={"sqlalchemy.url": pg.driver_url("psycopg"), "tenants": "u01"},
    )
    for key, value in setup.items():
        section, _, option = key.rpartition(":")
        proj.set_option(option, value, section or "alembic")
    result = proj.alembic(*(args or ["-x", "tenant=all"]), "upgrade", "head", ok=False)
    assert result.code == 255
    failed = [line for line in result.output.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and message in failed[0], result.output
    assert not _schemas(pg) & {"e01", "u01", "x01"}  # nothing ran


@pytest.mark.orchestration
def test_catalog_row_on_an_unknown_server_is_one_line(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    proj = project("multitenant", prepare=_two)
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants_url", pg.driver_url("psycopg"))
    _catalog(pg, [("e01", "eu1"), ("x01", "ap1")])
    _servers(
        proj,
        eu1={"sqlalchemy.url": pg.driver_url("psycopg")},
        us1={"sqlalchemy.url": pg.driver_url("psycopg")},
    )
    proj.set_option("tenants_query", "SELECT slug, region FROM catalog")
    bad = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert "places tenant 'x01' on server 'ap1', which is not one of servers" in (
        bad.output
    )
    proj.set_option("tenants_query", "SELECT slug FROM catalog")
    one = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert "must return two with servers: the tenant name and its server" in one.output
    assert not _schemas(pg) & {"e01", "x01"}


def test_database_tenants_on_mariadb_and_postgresql(
    project: Callable[..., Project], pg: ServerDB, mysql: ServerDB
) -> None:
    """A catalog on MariaDB places tenant databases on MariaDB and on
    PostgreSQL: created where they belong (``create_tenants = known``), with
    two workers; the run record is kept beside the catalog."""
    proj = project("multitenant", prepare=_two)
    head = proj.prepared[-1]
    prefix = str(mysql.url.database)
    catalog_url = mysql.driver_url("pymysql")
    maria = catalog_url.replace(f"/{prefix}", f"/{prefix}_{{tenant}}")
    post = pg.driver_url("psycopg").replace(
        f"/{pg.url.database}", f"/{prefix}_{{tenant}}"
    )
    with sa.create_engine(catalog_url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE catalog (slug VARCHAR(63), region TEXT)")
        conn.exec_driver_sql(
            "INSERT INTO catalog VALUES ('m01', 'maria'), ('m02', 'maria'),"
            " ('p01', 'post')"
        )
    proj.set_option("tenant_strategy", "database")
    proj.set_option("create_tenants", "known")
    proj.set_option("tenants_url", catalog_url)
    proj.set_option("tenants_query", "SELECT slug, region FROM catalog ORDER BY slug")
    _servers(proj, maria={"sqlalchemy.url": maria}, post={"sqlalchemy.url": post})

    def databases(url: str, sql: str) -> set[str]:
        with sa.create_engine(url, poolclass=sa.pool.NullPool).connect() as conn:
            return {str(n) for n in conn.scalars(sa.text(sql), {"p": f"{prefix}_%"})}

    on_maria = (
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"
    )
    on_post = "SELECT datname FROM pg_database WHERE datname LIKE :p"
    try:
        run = proj.alembic("-x", "tenant=all", "-x", "workers=2", "upgrade", "head")
        assert "Server maria: 2 tenants: 2 upgraded" in run.stderr
        assert "Server post: 1 tenant: 1 upgraded" in run.stderr
        assert databases(catalog_url, on_maria) == {f"{prefix}_m01", f"{prefix}_m02"}
        assert databases(pg.driver_url("psycopg"), on_post) == {f"{prefix}_p01"}
        with sa.create_engine(catalog_url).connect() as conn:
            q = "SELECT tenant, to_revision FROM alembic_recipes_fleet_run"
            assert dict(conn.execute(sa.text(q)).all()) == {
                "m01": head, "m02": head, "p01": head,
            }  # fmt: skip
        current = proj.alembic("current")
        for name in ("m01", "m02", "p01"):
            assert f"{name}: {head} (head)" in current.stdout
    finally:
        for url, sql, force in (
            (catalog_url, on_maria, ""),
            (pg.driver_url("psycopg"), on_post, " WITH (FORCE)"),
        ):
            found = databases(url, sql)
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for name in found:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
            engine.dispose()


@pytest.mark.driver
@pytest.mark.pyproject
def test_servers_in_pyproject(project: Callable[..., Project]) -> None:
    """The pyproject flavour: ``servers`` in ``[tool.alembic]``, the servers'
    sections in alembic.ini beside the URLs."""
    proj = project("multitenant-pyproject")
    proj.alembic("revision", "-m", "a")
    path = proj.root / "pyproject.toml"
    text = path.read_text().replace(
        "[tool.alembic]\n",
        '[tool.alembic]\nservers = ["eu1", "us1"]\ntenant_strategy = "schema"\n',
    )
    path.write_text(
        re.sub(r'^#? ?tenant_strategy = "database"\n', "", text, flags=re.M)
    )
    _servers_sections = {
        "eu1": {"sqlalchemy.url": "postgresql://app@eu.example/app", "tenants": "e01"},
        "us1": {"sqlalchemy.url": "postgresql://app@us.example/app", "tenants": "u01"},
    }
    text = proj.ini.read_text()
    for name, options in _servers_sections.items():
        text += f"\n[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
    proj.ini.write_text(text)
    out = proj.alembic("-x", "tenant=all", "upgrade", "head", "--sql").stdout
    assert "-- Tenant e01 on server eu1 (postgresql://app@eu.example/app)" in out
    assert "-- Tenant u01 on server us1 (postgresql://app@us.example/app)" in out


@pytest.fixture
def pg_other(pg: ServerDB) -> Iterator[ServerDB]:
    """Another database on the shared server: a second "server" in the ini."""
    yield from throwaway_on(pg.url.set(database="postgres"))


@pytest.mark.concurrency
def test_sigterm_over_servers_leaves_whole_tenants_and_no_lock(
    project: Callable[..., Project], pg: ServerDB, pg_other: ServerDB
) -> None:
    """A pod stopped with SIGTERM during a fleet over two servers (two
    workers, one per server): each tenant is at head or untouched, no lock
    is left on either server, the summary says what was not attempted, and
    the next run finishes the rest."""
    proj = project("multitenant", prepare=_two)
    slow = proj.revision(
        "slow", upgrade='op.execute("SELECT pg_sleep(0.3)")', downgrade="pass"
    )
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("create_tenants", "known")
    eu, us = EU[:5], US[:5]
    _servers(
        proj,
        eu1={"sqlalchemy.url": _with_password(pg.driver_url("psycopg")),
             "tenants": ", ".join(eu)},
        us1={"sqlalchemy.url": _with_password(pg_other.driver_url("psycopg")),
             "tenants": ", ".join(us)},
    )  # fmt: skip
    run = spawn(
        proj, "-x", "tenant=all", "-x", "workers=2", "-x", "server_workers=1",
        "upgrade", "head",
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:  # a few tenants done, most not
        versions = {**_versions(pg, eu), **_versions(pg_other, us)}
        if sum(v == [slow] for v in versions.values()) >= 2:
            break
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=DEADLINE)
    assert run.returncode == -signal.SIGTERM, err
    assert "FAILED: interrupted by SIGTERM:" in out and "not attempted" in err
    assert PASSWORD not in out + err
    versions = {**_versions(pg, eu), **_versions(pg_other, us)}
    assert set(map(tuple, versions.values())) <= {(slow,), ()}  # whole tenants only
    assert 0 < sum(v == [slow] for v in versions.values()) < 10
    assert advisory_locks(pg) == 0 and advisory_locks(pg_other) == 0
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    versions = {**_versions(pg, eu), **_versions(pg_other, us)}
    assert all(v == [slow] for v in versions.values())


@pytest.mark.orchestration
def test_claiming_runners_over_two_servers(
    project: Callable[..., Project], pg: ServerDB, second: ServerDB
) -> None:
    """Three runners of one run (``-x shard=claim``) over two servers placed
    by a catalog, one SIGKILLed once two tenants are done: the claims live
    in the catalog's database; the others take its tenant over; every
    tenant, on its own server, migrated once; each server's record complete;
    a runner that comes later finds the run finished.  No password printed."""
    proj = project("multitenant", prepare=_two)
    once = proj.revision(
        "once",
        upgrade='op.execute("SELECT pg_sleep(0.1)")\n'
        'op.execute("CREATE TABLE once (id int)")\n'
        'op.execute("INSERT INTO once VALUES (1)")',
    )
    _placed_by_catalog(proj, pg, second, _with_password(pg.driver_url("psycopg")))
    claim = ("-x", "tenant=all", "-x", "shard=claim", "-x", "run=r1")
    args = (*claim, "-x", "claim_lease=2s", "upgrade", "head")
    runners = [spawn(proj, *args) for _ in range(3)]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:  # two tenants done: one runner evicted
        done = [v for v in _versions(pg, EU).values() if v == [once]]
        if len(done) + sum(v == [once] for v in _versions(second, US).values()) >= 2:
            break
        time.sleep(0.05)
    runners[0].kill()
    runners[0].communicate(timeout=DEADLINE)
    for runner in runners[1:]:
        _, err = runner.communicate(timeout=DEADLINE)
        assert runner.returncode == 0, err[-3000:]
        assert PASSWORD not in err
    assert _versions(pg, EU) == {name: [once] for name in EU}
    assert _versions(second, US) == {name: [once] for name in US}
    assert not _schemas(pg) & set(US) and not _schemas(second) & set(EU)
    for db, names in ((pg, EU), (second, US)):
        with db.engine().connect() as conn:
            counts = {
                n: conn.scalar(sa.text(f"SELECT count(*) FROM {n}.once")) for n in names
            }
            q = "SELECT tenant, status FROM alembic_recipes_fleet_run"
            record = dict(conn.execute(sa.text(q)).all())
        assert set(counts.values()) == {1}  # each tenant's revision ran once
        assert record == dict.fromkeys(names, "upgraded")
    with pg.engine().connect() as conn:
        q = "SELECT tenant, state FROM alembic_recipes_fleet_claim WHERE run_id = 'r1'"
        claims = dict(conn.execute(sa.text(q)).all())
    assert claims == dict.fromkeys(EU + US, "done")
    late = proj.alembic(*claim, "upgrade", "head", process=True)
    assert "Run r1 finished before this runner started: nothing to do" in late.stderr
    status = proj.alembic("-x", "tenant=all", "current", process=True)
    assert "Last shared run r1: 12 tenants, " in status.stderr, status.stderr
