"""multidb-mixed template through the CLI: SQLite sync + aiosqlite, PostgreSQL
(asyncpg) + SQLite, and MariaDB as a third database where it matters."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import alembic_recipes
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine
from support.projects import Project, add_database, assert_ruff_clean
from support.servers import ServerDB, tables, versions


def _two(proj: Project) -> tuple[str, str]:
    """Revision 1: ``users`` in main, ``events`` in analytics; revision 2:
    ``flag`` in main and a row in analytics (fails where ``events`` is missing)."""
    rev1 = proj.revision(
        "tables",
        upgrade_main=(
            'op.create_table("users", sa.Column("id", sa.Integer, primary_key=True))'
        ),
        downgrade_main='op.drop_table("users")',
        upgrade_analytics='op.create_table("events", sa.Column("id", sa.Integer))',
        downgrade_analytics='op.drop_table("events")',
    )
    rev2 = proj.revision(
        "more",
        upgrade_main='op.create_table("flag", sa.Column("id", sa.Integer))',
        downgrade_main='op.drop_table("flag")',
        upgrade_analytics='op.execute("INSERT INTO events (id) VALUES (1)")',
        downgrade_analytics='op.execute("DELETE FROM events")',
    )
    return rev1, rev2


@pytest.fixture
def sqlite_pair(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, str, str]:
    """The embedded default: main = sqlite (sync), analytics = sqlite+aiosqlite."""
    proj = project("multidb-mixed", prepare=_two)
    monkeypatch.chdir(proj.root)
    return proj, f"sqlite:///{proj.root}/main.db", f"sqlite:///{proj.root}/analytics.db"


@pytest.fixture
def pg_pair(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, str, str]:
    """main = PostgreSQL through asyncpg, analytics = SQLite (sync)."""
    proj = project("multidb-mixed", prepare=_two)
    proj.set_option("sqlalchemy.url", pg.driver_url("asyncpg"), section="main")
    proj.set_option(
        "sqlalchemy.url", f"sqlite:///{proj.root}/analytics.db", section="analytics"
    )
    monkeypatch.chdir(proj.root)
    return proj, pg.driver_url("psycopg"), f"sqlite:///{proj.root}/analytics.db"


PAIRS = ["sqlite_pair", pytest.param("pg_pair", marks=pytest.mark.postgresql)]


@pytest.mark.parametrize("pair", PAIRS)
def test_upgrade_downgrade_every_database(
    pair: str, request: pytest.FixtureRequest
) -> None:
    proj, main, analytics = request.getfixturevalue(pair)
    rev1, rev2 = proj.prepared
    out = proj.alembic("upgrade", "head").stderr
    assert "Committed 2 databases: main, analytics" in out
    assert {"users", "flag"} <= tables(main) and "events" not in tables(main)
    assert "events" in tables(analytics) and "users" not in tables(analytics)
    assert versions(main) == versions(analytics) == [rev2]
    proj.alembic("downgrade", rev1)
    assert versions(main) == versions(analytics) == [rev1]
    assert "flag" not in tables(main)
    proj.alembic("downgrade", "base")
    assert versions(main) == versions(analytics) == []
    assert "users" not in tables(main) and "events" not in tables(analytics)


@pytest.mark.parametrize("pair", PAIRS)
def test_failure_on_second_database_rolls_back_the_first(
    pair: str, request: pytest.FixtureRequest
) -> None:
    proj, main, analytics = request.getfixturevalue(pair)
    proj.revision("broken", upgrade_analytics='op.execute("SELECT * FROM missing")')
    result = proj.alembic("upgrade", "head", ok=False)
    assert "Rolled back every database (main, analytics)" in result.stderr
    assert versions(main) == versions(analytics) == []
    assert tables(main) == set() and tables(analytics) == set()


@pytest.mark.parametrize("pair", PAIRS)
def test_subset_with_x_db(pair: str, request: pytest.FixtureRequest) -> None:
    proj, main, analytics = request.getfixturevalue(pair)
    rev1, rev2 = proj.prepared
    proj.alembic("-x", "db=main", "upgrade", rev1)
    assert versions(main) == [rev1] and versions(analytics) == []
    proj.alembic("-x", "db=analytics", "upgrade", rev1)
    proj.alembic("-x", "db=main,analytics", "upgrade", "head")
    assert versions(main) == versions(analytics) == [rev2]


def test_unknown_database_and_bad_names(sqlite_pair: tuple[Project, str, str]) -> None:
    proj, main, _ = sqlite_pair
    result = proj.alembic("-x", "db=reports", "upgrade", "head", ok=False)
    assert (
        "unknown database 'reports' in -x db: configured databases are main, analytics"
        in result.stderr
    )
    assert not Path(main.removeprefix("sqlite:///")).exists()
    for bad in ("main, 2nd", "main, my-db", "main, class"):
        proj.set_option("databases", bad)
        result = proj.alembic("upgrade", "head", ok=False)
        name = bad.split(", ")[1]
        assert f"invalid database name {name!r} in databases" in result.stderr
        # Alembic reports template errors as "Template rendering failed; see
        # <file>" (our message is in that file); no revision file is left
        before = set(proj.versions.glob("*.py"))
        proj.alembic("revision", "-m", "x", ok=False)
        assert set(proj.versions.glob("*.py")) == before
    assert not Path(main.removeprefix("sqlite:///")).exists()


def test_plain_revision_needs_no_revision_environment(
    sqlite_pair: tuple[Project, str, str],
) -> None:
    proj, _, _ = sqlite_pair
    add_database(proj, "audit", f"sqlite:///{proj.root}/audit.db")
    out = proj.alembic("revision", "-m", "third db").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    text = path.read_text()
    for name in ("main", "analytics", "audit"):
        assert f"def upgrade_{name}() -> None:" in text
        assert f"def downgrade_{name}() -> None:" in text
    assert_ruff_clean(path)


def test_offline_sections(sqlite_pair: tuple[Project, str, str]) -> None:
    proj, main, _ = sqlite_pair
    out = proj.alembic("upgrade", "head", "--sql").stdout
    first, second = (
        out.index("-- Database main: sqlite:///"),
        out.index("-- Database analytics: sqlite+aiosqlite:///"),
    )
    assert first < out.index("CREATE TABLE users") < second
    assert second < out.index("CREATE TABLE events")
    assert "CREATE TABLE events" not in out[:second]
    assert not Path(main.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize("pair", PAIRS)
def test_autogenerate_places_ops_per_database(
    pair: str, request: pytest.FixtureRequest
) -> None:
    proj, _, _ = request.getfixturevalue(pair)
    proj.alembic("upgrade", "head")
    (proj.root / "models.py").write_text(
        "import sqlalchemy as sa\n\n"
        "main = sa.MetaData()\n"
        'sa.Table("users", main, sa.Column("id", sa.Integer, primary_key=True))\n'
        'sa.Table("flag", main, sa.Column("id", sa.Integer))\n'
        "analytics = sa.MetaData()\n"
        'sa.Table("events", analytics, sa.Column("id", sa.Integer))\n'
    )
    env = proj.env_py.read_text().replace(
        "target_metadata: dict[str, MetaData] = {}",
        "from models import analytics, main\n\n"
        'target_metadata: dict[str, MetaData] = {"main": main, "analytics": analytics}',
    )
    proj.env_py.write_text(env)
    out = proj.alembic("revision", "--autogenerate", "-m", "nothing").output
    assert "no revision file written" in out  # empty in *both* databases
    models = (proj.root / "models.py").read_text()
    (proj.root / "models.py").write_text(
        models + 'sa.Table("sessions", analytics, sa.Column("id", sa.Integer))\n'
    )
    out = proj.alembic("revision", "--autogenerate", "-m", "sessions").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    text = path.read_text()
    upgrade_analytics = text.split("def upgrade_analytics()")[1].split("\ndef ")[0]
    upgrade_main = text.split("def upgrade_main()")[1].split("\ndef ")[0]
    assert '"sessions"' in upgrade_analytics
    assert "op." not in upgrade_main
    assert_ruff_clean(path)


@pytest.mark.mysql
@pytest.mark.postgresql
def test_mariadb_is_migrated_last_and_ddl_commits(
    project: Callable[..., Project],
    pg: ServerDB,
    mysql: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MariaDB commits DDL implicitly, so it runs after the transactional
    databases: a failure in PostgreSQL or SQLite leaves it untouched.  A failure
    in MariaDB itself rolls back the others, but MariaDB keeps what its implicit
    commits committed: the DDL, and the version row as it stood at that point."""
    proj = project("multidb-mixed")
    monkeypatch.chdir(proj.root)
    proj.set_option("sqlalchemy.url", pg.driver_url("asyncpg"), section="main")
    add_database(proj, "audit", mysql.driver_url("pymysql"))
    proj.set_option("databases", "audit, main, analytics")  # MariaDB listed first
    maria, main = mysql.driver_url("pymysql"), pg.driver_url("psycopg")
    rev1, rev2 = _two(proj)
    audit = proj.revision(
        "audit",
        upgrade_audit='op.create_table("log", sa.Column("id", sa.Integer))',
        upgrade_analytics='op.execute("SELECT * FROM nope")',  # fails
    )
    result = proj.alembic("upgrade", "head", ok=False)
    order = re.findall(r"Database (\w+) \(", result.stderr)
    assert order == ["main", "analytics"]  # audit never reached
    assert tables(maria) == set()
    assert versions(main) == []
    # now the failure is in MariaDB itself, after its own DDL ran
    text = proj.revision_file(audit).read_text()
    text = text.replace('    op.execute("SELECT * FROM nope")\n', "").replace(
        'op.create_table("log", sa.Column("id", sa.Integer))',
        'op.create_table("log", sa.Column("id", sa.Integer))\n'
        '    op.execute("SELECT * FROM nope")',
    )
    proj.revision_file(audit).write_text(text)
    result = proj.alembic("upgrade", "head", ok=False)
    assert "Rolled back every database (main, analytics, audit)" in result.stderr
    assert versions(main) == [] and tables(main) == set()
    assert tables(f"sqlite:///{proj.root}/analytics.db") == set()
    # CREATE TABLE log committed rev2's version row along with itself
    assert {"alembic_version", "log"} <= tables(maria)
    assert versions(maria) == [rev2]
    assert rev1


@pytest.mark.postgresql
def test_two_phase_commit(pg_pair: tuple[Project, str, str], pg: ServerDB) -> None:
    proj, main, analytics = pg_pair
    proj.set_option("two_phase", "true")
    with pg.engine().connect() as conn:
        allowed = conn.exec_driver_sql("SHOW max_prepared_transactions").scalar()
    # analytics is SQLite, which cannot prepare: a clear error, nothing applied
    result = proj.alembic("upgrade", "head", ok=False)
    assert "database 'analytics' (sqlite) does not support two-phase commit" in (
        result.stderr
    )
    assert versions(main) == [] and versions(analytics) == []
    proj.set_option("databases", "main")
    if str(allowed) == "0":
        result = proj.alembic("upgrade", "head", ok=False)
        assert "has max_prepared_transactions = 0" in result.stderr
        assert versions(main) == []
    else:
        proj.alembic("upgrade", "head")
        assert versions(main) == [proj.prepared[1]]


def test_shared_connections_of_every_type(
    sqlite_pair: tuple[Project, str, str],
) -> None:
    proj, main, analytics = sqlite_pair
    cfg = Config(str(proj.ini))
    cfg.attributes["configure_logger"] = False
    main_engine = sa.create_engine(main)
    alembic_recipes.transactional_sqlite(main_engine)
    analytics_async = create_async_engine(
        analytics.replace("sqlite:", "sqlite+aiosqlite:")
    )
    cfg.attributes["connections"] = {"main": main_engine, "analytics": analytics_async}
    command.upgrade(cfg, proj.prepared[0])
    assert versions(main) == versions(analytics) == [proj.prepared[0]]

    async def from_the_loop() -> None:
        async with analytics_async.connect() as aconn:
            with main_engine.connect() as conn:
                cfg.attributes["connections"] = {"main": conn, "analytics": aconn}
                # a sync command.upgrade() cannot await aconn from its own loop:
                with pytest.raises(Exception, match="cannot await"):
                    command.upgrade(cfg, "head")
                # through run_sync the whole command runs on the caller's loop
                await alembic_recipes.upgrade_async(aconn, cfg)
                conn.commit()
            await aconn.commit()
        await analytics_async.dispose()

    asyncio.run(from_the_loop())
    assert versions(main) == versions(analytics) == [proj.prepared[1]]
    cfg.attributes["connections"] = {"main": "sqlite:///x.db"}
    with pytest.raises(TypeError, match=r"connections'\]\['main'\] must be"):
        command.upgrade(cfg, "head")
    cfg.attributes["connections"] = {"reports": main_engine}
    with pytest.raises(Exception, match="unknown database 'reports'"):
        command.upgrade(cfg, "head")


def test_shared_connections_in_callers_transaction(
    sqlite_pair: tuple[Project, str, str],
) -> None:
    proj, main, analytics = sqlite_pair
    cfg = Config(str(proj.ini))
    cfg.attributes["configure_logger"] = False
    engines = {}
    for name, url in (("main", main), ("analytics", analytics)):
        engines[name] = sa.create_engine(url, poolclass=sa.pool.NullPool)
        alembic_recipes.transactional_sqlite(engines[name])
    conns = {name: engine.connect() for name, engine in engines.items()}
    for conn in conns.values():
        conn.begin()
    cfg.attributes["connections"] = conns
    command.upgrade(cfg, "head")
    for conn in conns.values():
        conn.rollback()  # the callers' transactions decide
        conn.close()
    assert versions(main) == versions(analytics) == []
