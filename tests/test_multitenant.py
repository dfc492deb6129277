"""multitenant template through the CLI: schema strategy on PostgreSQL (psycopg and
asyncpg), database strategy on SQLite (and on PostgreSQL)."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import alembic_recipes
import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic_recipes import TenantSettings
from alembic_recipes.configuration.options import InvalidOption
from alembic_recipes.tenants.records.record import RECORD_TABLE
from sqlalchemy.ext.asyncio import create_async_engine
from support.projects import Project, assert_ruff_clean
from support.servers import ServerDB

ITEM_UP = """\
op.create_table("item", sa.Column("id", sa.Integer, primary_key=True))
op.create_index("ix_item_id", "item", ["id"])
"""
NOTE_UP = """\
op.add_column("item", sa.Column("note", sa.String(50)))
op.create_table("blocker", sa.Column("id", sa.Integer, primary_key=True))
op.execute("INSERT INTO item (id, note) VALUES (1, 'seed')")
"""
NOTE_DOWN = """\
op.drop_table("blocker")
op.drop_column("item", "note")
"""


def _revisions(proj: Project) -> tuple[str, str]:
    """1: table ``item`` + index; 2: a column, a table ``blocker`` (pre-create
    it in a tenant to make revision 2 fail there) and a data row."""
    rev1 = proj.revision("item", upgrade=ITEM_UP, downgrade='op.drop_table("item")')
    rev2 = proj.revision("note", upgrade=NOTE_UP, downgrade=NOTE_DOWN)
    return rev1, rev2


HOSTILE = [
    "acme; drop schema public cascade",
    '"acme"',
    "a b",
    "a" * 64,
    "",
    "public",
    "pg_catalog",
    "../x",
    "information_schema",
    "acme,ALL",
    "acme\n",
]


# -- schema strategy (PostgreSQL) ----------------------------------------------
@dataclass
class Schemas:
    proj: Project
    db: ServerDB
    rev1: str
    rev2: str

    def sql(self, statement: str) -> None:
        with self.db.engine().begin() as conn:
            conn.exec_driver_sql(statement)

    def schemas(self) -> set[str]:
        with self.db.engine().connect() as conn:
            rows = conn.scalars(
                sa.text(
                    "SELECT schema_name FROM information_schema.schemata WHERE"
                    " schema_name NOT LIKE 'pg_%'"
                    " AND schema_name <> 'information_schema'"
                )
            )
            return set(rows)

    def tables(self, schema: str) -> set[str]:
        """Tables of *schema* (but the fleet's run record)."""
        with self.db.engine().connect() as conn:
            names = set(sa.inspect(conn).get_table_names(schema=schema))
        return names - {RECORD_TABLE}

    def version(self, schema: str) -> list[str]:
        if "alembic_version" not in self.tables(schema):
            return []
        with self.db.engine().connect() as conn:
            q = f'SELECT version_num FROM "{schema}".alembic_version'
            return list(conn.scalars(sa.text(q)))


@pytest.fixture(
    params=[
        pytest.param("psycopg", marks=pytest.mark.postgresql),
        pytest.param("asyncpg", marks=pytest.mark.postgresql),
    ]
)
def s(
    request: pytest.FixtureRequest,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> Schemas:
    proj = project("multitenant", url=pg.driver_url(request.param), prepare=_revisions)
    proj.set_option("tenant_strategy", "schema")
    proj.set_option("tenants", "")
    monkeypatch.chdir(proj.root)
    env = Schemas(proj, pg, *proj.prepared)
    env.sql("CREATE SCHEMA acme; CREATE SCHEMA globex; CREATE SCHEMA initech")
    return env


def test_schema_one_tenant(s: Schemas) -> None:
    out = s.proj.alembic("-x", "tenant=acme", "upgrade", "head").stderr
    assert s.version("acme") == [s.rev2]
    assert {"item", "blocker", "alembic_version"} <= s.tables("acme")
    assert s.tables("globex") == set() and s.tables("public") == set()
    assert "[1/1] acme: upgraded base -> " in out and "(2 revisions)" in out


def test_schema_list_then_status_then_noop(s: Schemas) -> None:
    s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head")
    assert s.version("acme") == s.version("globex") == [s.rev2]
    assert s.tables("initech") == set()
    status = s.proj.alembic("-x", "tenant=acme,globex,initech", "current").stderr
    assert f"[1/3] acme: {s.rev2} (at head)" in status
    assert "[3/3] initech: base (behind head)" in status
    again = s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head").stderr
    assert "[2/2] globex: already at head" in again
    assert "Running upgrade" not in again


def test_schema_all_from_query(s: Schemas) -> None:
    """tenants_query reads the shared table first: its autobegun transaction
    must not swallow the migrations (the silent-rollback trap)."""
    s.sql(
        "CREATE TABLE public.tenants (slug text, active bool);"
        "INSERT INTO public.tenants VALUES ('globex', true), ('acme', true),"
        " ('initech', false)"
    )
    s.proj.set_option(
        "tenants_query", "SELECT slug FROM public.tenants WHERE active ORDER BY slug"
    )
    out = s.proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "[1/2] acme" in out and "[2/2] globex" in out
    assert s.version("acme") == s.version("globex") == [s.rev2]
    assert s.version("initech") == []
    with s.db.engine().connect() as conn:
        seed = conn.scalar(sa.text("SELECT note FROM globex.item"))
    assert seed == "seed"  # committed, not rolled back behind an exit 0
    assert s.tables("public") == {"tenants"}


@pytest.mark.parametrize(
    "s", [pytest.param("psycopg", marks=pytest.mark.postgresql)], indirect=True
)
@pytest.mark.orchestration
def test_tenants_query_with_two_columns_is_an_error(s: Schemas) -> None:
    """Not silently its first column: one line naming the columns."""
    s.sql(
        "CREATE TABLE public.tenants (slug text, server text);"
        "INSERT INTO public.tenants VALUES ('acme', 'eu1')"
    )
    s.proj.set_option("tenants_query", "SELECT slug, server FROM public.tenants")
    failed = s.proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert failed.code == 255
    (line,) = [x for x in failed.stdout.splitlines() if x.startswith("FAILED:")]
    assert "returns 2 columns (slug, server); it must return one" in line
    assert s.version("acme") == [] and s.tables("acme") == set()


def test_schema_all_from_pattern_and_list(s: Schemas) -> None:
    s.sql("CREATE SCHEMA t_one; CREATE SCHEMA t_two")
    s.proj.set_option("tenants_pattern", "t_*")
    s.proj.set_option("tenants", "acme")
    out = s.proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "[1/3] acme" in out and "[3/3] t_two" in out
    assert s.version("t_one") == s.version("t_two") == s.version("acme") == [s.rev2]
    assert s.version("globex") == []


@pytest.mark.parametrize(
    "s", [pytest.param("psycopg", marks=pytest.mark.postgresql)], indirect=True
)  # validation happens before any driver is involved
@pytest.mark.orchestration
def test_schema_hostile_names_rejected_before_any_sql(s: Schemas) -> None:
    """One hostile name through the CLI, on the database; every one where
    env.py checks them (TenantSettings.load, before any connection)."""
    before = s.schemas()
    result = s.proj.alembic("-x", f"tenant={HOSTILE[0]}", "upgrade", "head", ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert (
        "invalid tenant name" in lines[0]
        and "1 to 63 lower-case ASCII letters" in lines[0]
    )
    assert s.schemas() == before
    assert all(s.tables(schema) == set() for schema in before)
    for name in HOSTILE:
        config = Config(str(s.proj.ini))
        config.cmd_opts = argparse.Namespace(x=[f"tenant={name}"])
        with pytest.raises(InvalidOption) as info:
            TenantSettings.load(config)
        message = str(info.value)
        assert "invalid tenant name" in message, name
        assert "1 to 63 lower-case ASCII letters" in message


@pytest.mark.driver
@pytest.mark.orchestration
def test_hostile_name_fails_without_connecting(s: Schemas) -> None:
    s.proj.set_option("sqlalchemy.url", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = s.proj.alembic("-x", "tenant=acme;drop", "upgrade", "head", ok=False)
    assert "invalid tenant name 'acme;drop'" in result.stderr
    assert "connection" not in result.stderr.lower()


def test_schema_no_tenant_is_an_error(s: Schemas) -> None:
    result = s.proj.alembic("upgrade", "head", ok=False)
    assert "no tenant given: pass -x tenant=NAME" in result.stderr
    assert s.tables("public") == set()


def test_schema_failure_isolation_and_convergence(s: Schemas) -> None:
    s.sql("CREATE TABLE globex.blocker (id int)")  # revision 2 fails in globex
    result = s.proj.alembic(
        "-x", "tenant=acme,globex,initech", "upgrade", "head", ok=False
    )
    assert "[2/3] globex: FAILED" in result.stderr
    assert "1 not attempted" in result.stderr
    assert "1 of 3 tenants failed: globex" in result.stderr
    assert s.version("acme") == [s.rev2]
    assert s.tables("globex") == {"blocker"}  # untouched: its transaction rolled back
    assert s.tables("initech") == set()  # stopped at the first failure
    # go on past failures
    result = s.proj.alembic(
        "-x", "tenant=acme,globex,initech", "-x", "continue=true", "upgrade", "head",
        ok=False,
    )  # fmt: skip
    assert s.version("initech") == [s.rev2]
    assert s.tables("globex") == {"blocker"}
    # fix the cause, rerun: converges
    s.sql("DROP TABLE globex.blocker")
    out = s.proj.alembic("-x", "tenant=acme,globex,initech", "upgrade", "head").stderr
    assert "[1/3] acme: already at head" in out
    assert s.version("globex") == [s.rev2]


def test_schema_missing_tenant_created_only_when_asked(s: Schemas) -> None:
    result = s.proj.alembic("-x", "tenant=newco", "upgrade", "head", ok=False)
    assert "tenant 'newco': schema does not exist" in result.stderr
    assert "newco" not in s.schemas()
    s.proj.alembic("-x", "tenant=newco", "-x", "create=true", "upgrade", "head")
    assert s.version("newco") == [s.rev2]
    s.proj.set_option("create_tenants", "true")
    s.proj.set_option("tenants_pattern", "*-co")
    made = s.proj.alembic("-x", "tenant=other-co", "upgrade", "head")
    assert s.version("other-co") == [s.rev2]
    assert "is created but" not in made.stderr  # tenant=all finds it


def test_schema_downgrade_one_tenant(s: Schemas) -> None:
    s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head")
    s.proj.alembic("-x", "tenant=acme", "downgrade", s.rev1)
    assert s.version("acme") == [s.rev1] and "blocker" not in s.tables("acme")
    assert s.version("globex") == [s.rev2]


def test_schema_autogenerate_is_schema_less_and_tenant_only(s: Schemas) -> None:
    s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head")
    s.sql("CREATE TABLE globex.only_in_globex (id int)")
    (s.proj.root / "models.py").write_text(
        "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
        'sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("note", sa.String(50)), sa.Index("ix_item_id", "id"))\n'
        'sa.Table("blocker", metadata, sa.Column("id", sa.Integer, primary_key=True))\n'
        'sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))\n'
    )
    s.proj.env_py.write_text(
        s.proj.env_py.read_text().replace(
            "target_metadata = None", "from models import metadata as target_metadata"
        )
    )
    out = s.proj.alembic("-x", "tenant=acme", "revision", "--autogenerate", "-m", "inv")
    path = Path(re.findall(r"Generating (\S+\.py)", out.output)[0])
    text = path.read_text()
    assert 'op.create_table(\n        "invoice"' in text
    for noise in ("alembic_version", "acme", "globex", "only_in_globex", "schema="):
        assert noise not in text, noise
    assert_ruff_clean(path)
    several = s.proj.alembic(
        "-x", "tenant=acme,globex", "revision", "--autogenerate", "-m", "x", ok=False
    )
    assert "autogenerate compares against one tenant" in several.stderr
    # a tenant without its schema: compared with nothing, and not created
    for args in (("revision", "--autogenerate", "-m", "y"), ("check",)):
        new = s.proj.alembic("-x", "tenant=newco", *args, ok=False)
        assert "Target database is not up to date" in new.output, args
        assert "newco" not in s.schemas()


def test_schema_offline_sections(s: Schemas) -> None:
    out = s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head", "--sql").stdout
    acme, globex = out.index("-- Tenant acme"), out.index("-- Tenant globex")
    assert acme < out.index('SET search_path TO "acme"') < globex
    assert out.index('SET search_path TO "globex"') > globex
    assert "CREATE TABLE acme.alembic_version" in out
    assert "CREATE TABLE globex.alembic_version" in out
    assert "CREATE TABLE item" in out[acme:globex]
    assert s.tables("acme") == set()  # offline: nothing ran


def test_upgrade_tenant_shares_callers_transaction(s: Schemas) -> None:
    cfg = Config(str(s.proj.ini))
    cfg.attributes["configure_logger"] = False
    engine = s.db.engine()
    with engine.connect() as conn:
        conn.begin()
        alembic_recipes.upgrade_tenant(cfg, "signup", connection=conn)
        path = conn.scalar(sa.text("SHOW search_path"))
        conn.rollback()
    assert "signup" not in s.schemas()
    assert "signup" not in str(path)  # the caller's search_path is restored
    with engine.begin() as conn:
        alembic_recipes.upgrade_tenant(cfg, "signup", connection=conn)
    assert s.version("signup") == [s.rev2]
    with pytest.raises(Exception, match="invalid tenant name"):
        alembic_recipes.upgrade_tenant(cfg, "bad name")


def test_upgrade_tenant_async(s: Schemas) -> None:
    cfg = Config(str(s.proj.ini))
    cfg.attributes["configure_logger"] = False
    url = s.db.driver_url("asyncpg")

    async def signup() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        await alembic_recipes.upgrade_tenant_async(engine, cfg, "async-co")
        await engine.dispose()

    asyncio.run(signup())
    assert s.version("async-co") == [s.rev2]


# -- database strategy ---------------------------------------------------------
@dataclass
class Databases:
    proj: Project
    rev1: str
    rev2: str

    def path(self, tenant: str) -> Path:
        return self.proj.root / "tenants" / f"{tenant}.db"

    def engine(self, tenant: str) -> sa.Engine:
        return sa.create_engine(f"sqlite:///{self.path(tenant)}")

    def tables(self, tenant: str) -> set[str]:
        if not self.path(tenant).exists():
            return set()
        with self.engine(tenant).connect() as conn:
            return set(sa.inspect(conn).get_table_names())

    def version(self, tenant: str) -> list[str]:
        if "alembic_version" not in self.tables(tenant):
            return []
        with self.engine(tenant).connect() as conn:
            return list(
                conn.scalars(sa.text("SELECT version_num FROM alembic_version"))
            )


@pytest.fixture(params=["sqlite", "sqlite+aiosqlite"])
def d(
    request: pytest.FixtureRequest,
    project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
) -> Databases:
    proj = project("multitenant", prepare=_revisions)
    if request.param != "sqlite":
        proj.set_option(
            "sqlalchemy.url", f"{request.param}:///{proj.root}/tenants/{{tenant}}.db"
        )
    monkeypatch.chdir(proj.root)
    return Databases(proj, *proj.prepared)


def test_database_unknown_needs_create_listed_are_made(d: Databases) -> None:
    result = d.proj.alembic("-x", "tenant=newco", "upgrade", "head", ok=False)
    assert "tenant 'newco': database does not exist" in result.stderr
    assert not d.path("newco").exists()
    d.proj.alembic("-x", "tenant=all", "upgrade", "head")  # listed: created
    assert d.version("acme") == d.version("globex") == [d.rev2]
    status = d.proj.alembic("-x", "tenant=all", "current").stderr
    assert "[2/2] globex: " in status and "(at head)" in status


def test_database_pattern_discovers_files(d: Databases) -> None:
    d.proj.set_option("tenants", "")
    d.proj.set_option("tenants_pattern", "*")
    d.path("zeta").parent.mkdir(parents=True)
    for name in ("zeta", "alpha"):
        d.engine(name).connect().close()  # an (empty) database file
    out = d.proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "[1/2] alpha" in out and "[2/2] zeta" in out
    assert d.version("alpha") == d.version("zeta") == [d.rev2]


@pytest.mark.orchestration
@pytest.mark.parametrize("d", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", HOSTILE)
def test_database_hostile_names(d: Databases, name: str) -> None:
    result = d.proj.alembic("-x", f"tenant={name}", "-x", "create=true", "upgrade",
                            "head", ok=False)  # fmt: skip
    assert "invalid tenant name" in result.stderr
    assert not (d.proj.root / "tenants").exists()
    assert not (d.proj.root / "x.db").exists()


def test_database_failure_isolation(d: Databases) -> None:
    d.path("globex").parent.mkdir(parents=True)
    with d.engine("globex").begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blocker (id int)")
    d.proj.alembic("-x", "tenant=acme,globex,initech", "-x", "create=true",
                   "upgrade", "head", ok=False)  # fmt: skip
    assert d.version("acme") == [d.rev2]
    assert d.tables("globex") == {"blocker"}  # SQLite DDL rolled back too
    assert not d.path("initech").exists()
    with d.engine("globex").begin() as conn:
        conn.exec_driver_sql("DROP TABLE blocker")
    d.proj.alembic("-x", "tenant=acme,globex,initech", "-x", "create=true",
                   "upgrade", "head")  # fmt: skip
    assert d.version("globex") == d.version("initech") == [d.rev2]


def test_database_offline(d: Databases) -> None:
    out = d.proj.alembic("-x", "tenant=all", "upgrade", "head", "--sql").stdout
    assert out.index("-- Tenant acme: database") < out.index("-- Tenant globex")
    assert "search_path" not in out
    assert not (d.proj.root / "tenants").exists()


@pytest.mark.postgresql
def test_database_strategy_on_postgresql(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One PostgreSQL database per tenant, created on demand, then dropped."""
    base = pg.url.database
    proj = project("multitenant", prepare=_revisions)
    template = pg.url.set(
        drivername="postgresql+asyncpg", database=f"{base}_{{tenant}}"
    )
    url = template.render_as_string(hide_password=False).replace("%7B", "{")
    proj.set_option("sqlalchemy.url", url.replace("%7D", "}"))
    monkeypatch.chdir(proj.root)
    admin = sa.create_engine(
        pg.url.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        proj.alembic("-x", "tenant=acme", "-x", "create=true", "upgrade", "head")
        tenant_db = pg.url.set(drivername="postgresql+psycopg", database=f"{base}_acme")
        with sa.create_engine(tenant_db, poolclass=sa.pool.NullPool).connect() as conn:
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
            assert "item" in sa.inspect(conn).get_table_names()
        out = proj.alembic("-x", "tenant=acme", "upgrade", "head").stderr
        assert "already at head" in out
    finally:
        admin.dispose()
        pg.drop_tenant_databases(["acme"])


@pytest.mark.postgresql
@pytest.mark.orchestration
def test_benchmark_script_runs(pg: ServerDB) -> None:
    """bench/multitenant.py keeps working (tiny size; no timing is asserted)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "multitenant.py"), "--tenants", "3",
         "--sample", "1", "--many-revisions", "6", "--many-tenants", "2",
         "--timeouts-tenants", "2", "--timeouts-rounds", "1", "--ratio-rounds", "1",
         "--segments-tenants", "2", "--segments-rounds", "1",
         "--pg-url", pg.url.render_as_string(hide_password=False)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "default in-process / floor at" in done.stdout
    assert "peak RSS" in done.stdout
    assert "Timeouts (1 alternating rounds of 2 tenants)" in done.stdout
    assert "transactions per tenant at 3: default " in done.stdout
    assert "workers=4 speed / parallel floor's at 3" in done.stdout
    assert "One database-reading revision in 10 (1 alternating rounds" in done.stdout


@pytest.mark.postgresql
@pytest.mark.orchestration
@pytest.mark.parametrize(
    ("script", "args", "printed"),
    [
        ("fleet_operations.py",
         ["--status-tenants", "3", "--check-tenants", "2", "--tenants", "3",
          "--rounds", "1"],
         ["check over 2 tenants:", "current over 3 tenants at head:",
          "plan over 3 tenants at head:",
          "Run record written as the run goes vs at its end",
          "record + report + progress bar, measured inside"]),
        ("workers_and_lock.py", ["--tenants", "4", "--repeat", "3"],
         ["workers=2 vs 1:", "PostgreSQL (psycopg)   lock on"]),
        ("replay.py", ["--only", "synthetic", "--tenants", "4", "--rounds", "1"],
         ["synthetic chain: 4 tenants", "default / floor: median",
          "round trips (statements + commits"]),
        ("provisioning.py", ["--lengths", "12", "--tenants", "1", "--sign-ups", "0"],
         ["12 revisions", "replay/snapshot"]),
    ],
)  # fmt: skip
def test_other_benchmark_scripts_run(
    pg: ServerDB, script: str, args: list[str], printed: list[str]
) -> None:
    """The other bench/ scripts keep working (tiny sizes; no timing asserted)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    url = pg.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, str(root / "bench" / script), *args, "--pg-url", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in printed:
        assert line in done.stdout, line


def test_compiled_upgrades_replay_per_tenant(s: Schemas) -> None:
    """-x compiled=true: one rendered script per starting revision, replayed in
    each tenant's transaction; same end state as the normal run."""
    s.proj.alembic("-x", "tenant=globex", "upgrade", s.rev1)
    out = s.proj.alembic(
        "-x", "tenant=acme,globex,initech", "-x", "compiled=true", "upgrade", "head"
    ).stderr
    assert out.count("fleet upgrade base -> ") == 1  # acme, initech
    assert f"fleet upgrade {s.rev1} -> " in out  # globex
    assert "[3/3] initech: upgraded base -> " in out
    for tenant in ("acme", "globex", "initech"):
        assert s.version(tenant) == [s.rev2]
        assert {"item", "blocker", "alembic_version"} <= s.tables(tenant)
    with s.db.engine().connect() as conn:
        assert conn.scalar(sa.text("SELECT note FROM initech.item")) == "seed"
        indexes = sa.inspect(conn).get_indexes("item", schema="acme")
    assert [ix["name"] for ix in indexes] == ["ix_item_id"]
    assert s.tables("public") == set()


def test_compiled_upgrades_isolate_failures_and_fall_back(s: Schemas) -> None:
    s.sql("CREATE TABLE globex.blocker (id int)")
    result = s.proj.alembic(
        "-x", "tenant=acme,globex,initech", "-x", "compiled=true",
        "-x", "continue=true", "upgrade", "head", ok=False,
    )  # fmt: skip
    assert "[2/3] globex: FAILED" in result.stderr
    assert s.version("acme") == s.version("initech") == [s.rev2]
    assert s.tables("globex") == {"blocker"}
    # a revision that reads data cannot be rendered offline: normal run instead
    rev3 = s.proj.revision(
        "reads data",
        upgrade=(
            'count = op.get_bind().execute(sa.text("SELECT count(*) FROM item"))'
            ".scalar()\n"
            "op.execute(f\"INSERT INTO item (id, note) VALUES (2, '{count}')\")"
        ),
    )
    out = s.proj.alembic(
        "-x", "tenant=acme,initech", "-x", "compiled=true", "upgrade", "head"
    ).stderr
    assert (
        f"cannot be rendered offline: revision {rev3} raised" in out
        and "Alembic runs each tenant on that path instead" in out
    )
    assert "MockConnection" not in out  # the first error, not the one after it
    with s.db.engine().connect() as conn:
        assert conn.scalar(sa.text("SELECT note FROM acme.item WHERE id = 2")) == "1"
    assert s.version("acme") == [rev3]


def test_path_is_split_around_a_revision_that_reads_the_database(
    s: Schemas,
) -> None:
    """base -> rev1 -> rev2 -> reads -> last: the revision that reads the
    database runs through Alembic against each tenant's own data, the
    stretches before and after it are replayed -- all in the tenant's one
    transaction: a failure after the split rolls the whole tenant back."""
    reads = s.proj.revision(
        "reads data",
        upgrade=(
            'count = op.get_bind().execute(sa.text("SELECT count(*) FROM item"))'
            ".scalar()\n"
            "op.execute(f\"INSERT INTO item (id, note) VALUES (2, '{count}')\")"
        ),
    )
    last = s.proj.revision(
        "last", upgrade='op.create_table("last", sa.Column("id", sa.Integer))'
    )
    out = s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head").stderr
    assert out.count("3 of 4 revisions replayed from scripts rendered once") == 1
    assert out.count(f": {reads} (cannot be rendered offline: revision") == 1
    assert "MockConnection" not in out
    assert out.count(f"Running upgrade {s.rev2} -> {reads}") == 2  # Alembic's
    assert f"Running upgrade {reads} -> {last}" not in out  # replayed
    for tenant in ("acme", "globex"):
        assert s.version(tenant) == [last]
        assert {"item", "last", "alembic_version"} <= s.tables(tenant)
        with s.db.engine().connect() as conn:
            q = f"SELECT note FROM {tenant}.item WHERE id = 2"
            assert conn.scalar(sa.text(q)) == "1"  # its own data was read
    s.sql("CREATE TABLE initech.last (id int)")  # the last revision fails there
    failed = s.proj.alembic("-x", "tenant=initech,acme", "upgrade", "head", ok=False)
    assert "[1/2] initech: FAILED" in failed.stderr
    assert s.tables("initech") == {"last"}  # rolled back whole: nothing else


def test_batched_version_read_in_chunks(
    s: Schemas, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The batched read runs in statements of a bounded size (2 here)."""
    from alembic import command
    from alembic_recipes.tenants.running import schema_state

    monkeypatch.setattr(schema_state, "_CHUNK", 2)
    cfg = Config(str(s.proj.ini))
    cfg.attributes.update(tenant=["acme", "globex", "initech"], configure_logger=False)
    command.upgrade(cfg, "head")
    with caplog.at_level("INFO", logger="alembic.recipes.tenants"):
        command.upgrade(cfg, "head")
    assert "Tenants: 3 total: 3 already at head" in caplog.text


@pytest.mark.postgresql
def test_version_read_reports_each_schema_state(
    pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server-side version read (chunks of 2 here): a missing schema, one
    without a version table, two heads, and a revision id with the characters
    XML escapes come back as they are."""
    from alembic_recipes.tenants.running import schema_state

    monkeypatch.setattr(schema_state, "_CHUNK", 2)
    with pg.engine().begin() as conn:
        for name, versions in (("v_none", None), ("v_two", ["b1", "b2"]),
                               ("v_odd", ["a&b<c>'\""]), ("v_empty", [])):  # fmt: skip
            conn.execute(sa.schema.CreateSchema(name))
            if versions is None:
                continue
            column = sa.Column("version_num", sa.String(32))
            table = sa.Table("alembic_version", sa.MetaData(), column, schema=name)
            table.create(conn)
            for version in versions:
                conn.execute(table.insert().values(version_num=version))
    with pg.engine().connect() as conn:
        names = ["v_none", "v_two", "v_odd", "v_empty", "v_missing"]
        existing, with_table, found = schema_state.schema_state(conn, names)
    assert existing == {"v_none", "v_two", "v_odd", "v_empty"}
    assert with_table == {"v_two", "v_odd", "v_empty"}
    assert {k: sorted(v) for k, v in found.items()} == {
        "v_two": ["b1", "b2"],
        "v_odd": ["a&b<c>'\""],
    }


# -- fleet upgrades replay a once-rendered script where it is provably the same --
def _tenant_state(s: Schemas, schema: str) -> tuple[object, ...]:
    with s.db.engine().connect() as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names(schema=schema))
        columns = {
            t: [c["name"] for c in inspector.get_columns(t, schema=schema)]
            for t in tables
        }
        indexes = sorted(
            ix["name"] for t in tables for ix in inspector.get_indexes(t, schema=schema)
        )
    return (
        tuple(tables),
        tuple(sorted(columns.items())),
        tuple(indexes),
        s.version(schema),
    )


def test_default_mode_replays_and_matches_alembic(s: Schemas) -> None:
    out = s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head").stderr
    assert out.count("fleet upgrade base -> ") == 1
    assert "Running upgrade" not in out  # no per-operation work per tenant
    s.proj.alembic("-x", "tenant=initech", "-x", "compiled=false", "upgrade", "head")
    assert _tenant_state(s, "acme") == _tenant_state(s, "initech")
    assert _tenant_state(s, "globex") == _tenant_state(s, "initech")


def test_python_side_values_are_not_replayed_by_default(s: Schemas) -> None:
    """uuid4() renders differently each time: auto runs Alembic per tenant (each
    tenant its own value); compiled=true shares one value, as documented."""
    s.proj.revision(
        "uuids",
        upgrade=(
            "import uuid\n"
            'op.add_column("item", sa.Column("token", sa.String(36)))\n'
            "op.execute(f\"UPDATE item SET token = '{uuid.uuid4()}'\")"
        ),
    )
    out = s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head").stderr
    assert "its SQL differs from one rendering to the next" in out
    s.proj.alembic("-x", "tenant=initech", "-x", "compiled=true", "upgrade", "head")
    with s.db.engine().connect() as conn:
        tokens = [
            conn.scalar(sa.text(f"SELECT token FROM {t}.item"))
            for t in ("acme", "globex")
        ]
    assert tokens[0] != tokens[1]


def test_autocommit_block_is_not_replayed(s: Schemas) -> None:
    rev3 = s.proj.revision(
        "concurrently",
        upgrade=(
            "with op.get_context().autocommit_block():\n"
            '    op.create_index("ix_item_note", "item", ["note"],'
            " postgresql_concurrently=True)"
        ),
    )
    out = s.proj.alembic("-x", "tenant=acme,globex", "upgrade", "head").stderr
    assert f"Alembic runs 1 per tenant, in its transaction: {rev3} (uses" in out
    assert len(s.version("acme")) == 1
    with s.db.engine().connect() as conn:
        indexes = sa.inspect(conn).get_indexes("item", schema="acme")
    assert "ix_item_note" in {ix["name"] for ix in indexes}


@pytest.mark.parametrize(
    "mode",
    [
        ("-x", "tenant=all"),
        ("-x", "tenant=all", "-x", "compiled=true"),
        ("-x", "tenant=all", "-x", "compiled=false"),
        ("-x", "tenant=all", "-x", "workers=2"),
        ("-x", "tenant=acme"),
    ],
    ids=["default", "compiled", "not compiled", "workers", "one tenant"],
)
def test_autocommit_blocks_anywhere_in_a_replayed_chain(
    s: Schemas, mode: tuple[str, ...]
) -> None:
    """r1: a table, then an index built concurrently; r2 a plain table; r3
    another concurrent index -- in every mode, as stock Alembic runs it; the
    revisions rendered see the config and the ``-x`` arguments, as under
    ``--sql``; one tenant alone runs through Alembic (its usual lines)."""
    s.proj.set_option("tenants", "acme, globex")
    concurrently = (
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ix_{0}", "{0}", ["id"], postgresql_concurrently=True)'
    )
    r1 = s.proj.revision(
        "block one",
        upgrade='op.create_table("one", sa.Column("id", sa.Integer))\n'
        + concurrently.format("one"),
    )
    s.proj.revision(
        "plain",
        upgrade="from alembic import context\n"
        'assert op.get_context().config.get_main_option("tenants")\n'
        'where = context.get_x_argument(as_dictionary=True)["tenant"]\n'
        'op.create_table("two", sa.Column("id", sa.String(20)))\n'
        "op.execute(f\"INSERT INTO two VALUES ('{where}')\")",
    )
    r3 = s.proj.revision("block two", upgrade=concurrently.format("two"))
    s.proj.alembic("-x", "tenant=all", "upgrade", s.rev2)
    out = s.proj.alembic(*mode, "upgrade", "head").stderr
    done = ["acme"] if "tenant=acme" in mode else ["acme", "globex"]
    for tenant in done:
        assert s.version(tenant) == [r3], out
        with s.db.engine().connect() as conn:
            indexes = {
                ix["name"]
                for table in ("one", "two")
                for ix in sa.inspect(conn).get_indexes(table, schema=tenant)
            }
        assert indexes == {"ix_one", "ix_two"}
    if "tenant=acme" in mode:
        assert f"Running upgrade {s.rev2} -> {r1}" in out
        assert "rendered" not in out and "Generating static SQL" not in out
    elif "compiled=false" not in mode:
        assert "1 of 3 revisions replayed" in out
    assert "Generating static SQL" not in out


def test_merge_of_two_branches_replays_to_one_version_row(s: Schemas) -> None:
    s.proj.alembic("-x", "tenant=acme,globex", "upgrade", s.rev1)
    side = s.proj.revision(
        "side",
        upgrade='op.create_table("side", sa.Column("id", sa.Integer))',
        args=f"--head {s.rev1} --splice",
    )
    merge = s.proj.alembic("merge", "-m", "join", "heads").output
    head = re.findall(r"Generating \S+/(\w+)_join\.py", merge)[0]
    s.proj.alembic("-x", "tenant=acme", "upgrade", "head")
    s.proj.alembic("-x", "tenant=globex", "-x", "compiled=false", "upgrade", "head")
    assert s.version("acme") == s.version("globex") == [head]
    assert _tenant_state(s, "acme") == _tenant_state(s, "globex")
    assert side


@pytest.mark.parametrize("mode", ["default", "compiled=false", "workers=2"])
def test_extensions_live_once_beside_the_tenants(s: Schemas, mode: str) -> None:
    """A revision creates pg_trgm and a trigram index: the extension goes
    once into ``public`` (the extensions schema), every tenant's index finds
    its operator class through the search_path; a tenant's downgrade leaves
    the extension for the others."""
    s.proj.set_option("tenants", "acme, globex, initech")
    trgm = s.proj.revision(
        "trigram",
        upgrade='op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")\n'
        'op.create_table("doc", sa.Column("body", sa.Text))\n'
        'op.execute("CREATE INDEX ix_doc ON doc USING gin (body gin_trgm_ops)")',
        downgrade='op.drop_table("doc")\n'
        'op.execute("DROP EXTENSION IF EXISTS pg_trgm")',
    )
    args = () if mode == "default" else ("-x", mode)
    s.proj.alembic("-x", "tenant=all", *args, "upgrade", "head")
    with s.db.engine().connect() as conn:
        where = conn.execute(
            sa.text(
                "SELECT e.extname, n.nspname FROM pg_extension e"
                " JOIN pg_namespace n ON n.oid = e.extnamespace"
                " WHERE e.extname = 'pg_trgm'"
            )
        ).all()
    assert where == [("pg_trgm", "public")]
    for tenant in ("acme", "globex", "initech"):
        assert s.version(tenant) == [trgm]
    out = s.proj.alembic("-x", "tenant=acme", "downgrade", s.rev2).stderr
    assert "DROP EXTENSION pg_trgm skipped: extensions are shared" in out
    with s.db.engine().connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM pg_extension"
                                   " WHERE extname = 'pg_trgm'")) == 1  # fmt: skip
        conn.exec_driver_sql("DROP EXTENSION pg_trgm CASCADE")
