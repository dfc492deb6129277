"""Cookbook recipes wired into the templates: autogenerate hooks, at-head check,
create_all + stamp.  Through the CLI, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import alembic_recipes
import pytest
import sqlalchemy as sa
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine
from support.projects import Project, assert_ruff_clean
from support.servers import ServerDB


def use_models(proj: Project, source: str) -> None:
    """Write models.py and point env.py's target_metadata at it."""
    (proj.root / "models.py").write_text("import sqlalchemy as sa\n\n" + source)
    proj.env_py.write_text(
        proj.env_py.read_text().replace(
            "target_metadata = None", "from models import metadata as target_metadata"
        )
    )


def autogenerate(proj: Project, message: str = "auto") -> str | None:
    """Run ``revision --autogenerate``; the new file's text, or None if none."""
    before = set(proj.versions.glob("*.py"))
    out = proj.alembic("revision", "--autogenerate", "-m", message).output
    new = set(proj.versions.glob("*.py")) - before
    if not new:
        assert "No changes in schema detected; no revision file written." in out
        return None
    (path,) = new
    assert_ruff_clean(path)
    return path.read_text()


def section(text: str, function: str) -> str:
    return text.split(f"def {function}()")[1].split("\ndef ")[0]


ITEM = """\
metadata = sa.MetaData()
sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True))
"""


@pytest.fixture
def sqlite_proj(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> Project:
    proj = project("async-shared")
    monkeypatch.chdir(proj.root)
    return proj


# -- no empty migrations ---------------------------------------------------------
def test_no_empty_revision_file(sqlite_proj: Project) -> None:
    use_models(sqlite_proj, ITEM)
    assert autogenerate(sqlite_proj, "item") is not None
    sqlite_proj.alembic("upgrade", "head")
    assert autogenerate(sqlite_proj, "nothing") is None
    assert len(list(sqlite_proj.versions.glob("*.py"))) == 1
    # alembic check still works (its directives are never emptied)
    assert "No new upgrade operations detected" in sqlite_proj.alembic("check").output
    # a plain revision is always written, even with revision_environment = true
    sqlite_proj.set_option("revision_environment", "true")
    sqlite_proj.alembic("revision", "-m", "manual")
    assert len(list(sqlite_proj.versions.glob("*.py"))) == 2
    sqlite_proj.alembic("upgrade", "head")
    # switched off: the empty file is written, as Alembic does by default
    sqlite_proj.set_option("skip_empty_revisions", "false")
    text = autogenerate(sqlite_proj, "empty")
    assert text is not None and "op." not in section(text, "upgrade")


TWO_DB_ENV = '''"""Test env: two SQLite databases, one run_migrations() each."""

import sqlalchemy as sa
from alembic import context

from alembic_recipes import autogenerate_hooks

config = context.config
m1, m2 = sa.MetaData(), sa.MetaData()
sa.Table("one", m1, sa.Column("id", sa.Integer, primary_key=True))
sa.Table("two", m2, sa.Column("id", sa.Integer, primary_key=True))
if config.get_main_option("extra") == "yes":
    sa.Table("extra", m2, sa.Column("id", sa.Integer, primary_key=True))

for name, metadata in (("db1", m1), ("db2", m2)):
    engine = sa.create_engine(f"sqlite:///{name}.db")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            upgrade_token=f"{name}_upgrades",
            downgrade_token=f"{name}_downgrades",
            **autogenerate_hooks(config, runs=2),
        )
        with context.begin_transaction():
            context.run_migrations(engine_name=name)
        connection.commit()
'''

TWO_DB_SCRIPT = '''"""${message}"""

import sqlalchemy as sa
from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()[f"upgrade_{engine_name}"]()


def downgrade(engine_name):
    globals()[f"downgrade_{engine_name}"]()


def upgrade_db1():
    ${db1_upgrades if db1_upgrades else "pass"}


def downgrade_db1():
    ${db1_downgrades if db1_downgrades else "pass"}


def upgrade_db2():
    ${db2_upgrades if db2_upgrades else "pass"}


def downgrade_db2():
    ${db2_downgrades if db2_downgrades else "pass"}
'''


def test_no_empty_revision_waits_for_every_database(sqlite_proj: Project) -> None:
    """process_revision_directives runs once per run_migrations(): only an
    empty result for *both* databases may suppress the file."""
    sqlite_proj.env_py.write_text(TWO_DB_ENV)
    (sqlite_proj.root / "migrations" / "script.py.mako").write_text(TWO_DB_SCRIPT)
    sqlite_proj.set_option("hooks", "", section="post_write_hooks")
    first = sqlite_proj.alembic("revision", "--autogenerate", "-m", "both").output
    assert "Generating" in first
    sqlite_proj.alembic("upgrade", "head")
    sqlite_proj.alembic("revision", "--autogenerate", "-m", "none")
    assert len(list(sqlite_proj.versions.glob("*.py"))) == 1
    sqlite_proj.set_option("extra", "yes")  # a change in the second database only
    out = sqlite_proj.alembic("revision", "--autogenerate", "-m", "extra").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    text = path.read_text()
    assert "extra" in section(text, "upgrade_db2")
    assert "op." not in section(text, "upgrade_db1")


# -- no DROP INDEX for dropped tables ---------------------------------------------
AB = """\
metadata = sa.MetaData()
sa.Table("a", metadata, sa.Column("id", sa.Integer, primary_key=True))
sa.Table(
    "b",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("a_id", sa.Integer, sa.ForeignKey("a.id"), index=True),
)
"""


def _drop_index_roundtrip(proj: Project, engine: sa.Engine) -> None:
    use_models(proj, AB)
    created = autogenerate(proj, "create a b")
    assert created is not None
    assert "op.create_index(" in section(created, "upgrade")
    assert "op.drop_index(" not in section(created, "downgrade")  # tables dropped
    assert 'op.drop_table("b")' in section(created, "downgrade")
    proj.alembic("upgrade", "head")
    (proj.root / "models.py").write_text(
        "import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
    )
    dropped = autogenerate(proj, "drop a b")
    assert dropped is not None
    assert "op.drop_index(" not in section(dropped, "upgrade")
    assert 'op.drop_table("b")' in section(dropped, "upgrade")
    assert "op.create_index(" in section(dropped, "downgrade")
    proj.alembic("upgrade", "head")  # MariaDB would refuse DROP INDEX before DROP TABLE
    with engine.connect() as conn:
        assert not {"a", "b"} & set(sa.inspect(conn).get_table_names())
    proj.alembic("downgrade", "-1")
    with engine.connect() as conn:
        assert {"a", "b"} <= set(sa.inspect(conn).get_table_names())
        assert sa.inspect(conn).get_indexes("b")


@pytest.mark.mysql
def test_no_drop_index_for_dropped_tables_mariadb(
    project: Callable[..., Project], mysql: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=mysql.driver_url("pymysql"))
    monkeypatch.chdir(proj.root)
    _drop_index_roundtrip(proj, mysql.engine())


@pytest.mark.postgresql
def test_no_drop_index_for_dropped_tables_postgresql(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", url=pg.driver_url("asyncpg"))
    monkeypatch.chdir(proj.root)
    _drop_index_roundtrip(proj, pg.engine())


def test_drop_index_kept_when_switched_off(sqlite_proj: Project) -> None:
    sqlite_proj.set_option("skip_index_drops_of_dropped_tables", "false")
    use_models(sqlite_proj, AB)
    created = autogenerate(sqlite_proj)
    assert created is not None and "op.drop_index(" in section(created, "downgrade")


# -- views, unknown tables, column order ------------------------------------------
VIEW = ITEM + (
    'sa.Table("report", metadata, sa.Column("id", sa.Integer),'
    ' info={"is_view": True})\n'
)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgresql)])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(async URL for alembic.ini, sync URL to inspect) of the backend under test."""
    if request.param == "pg":
        db: ServerDB = request.getfixturevalue("pg")
        return db.driver_url("asyncpg"), db.driver_url("psycopg")
    path = tmp_path / "app" / "app.db"
    return f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}"


def test_views_are_left_alone(
    urls: tuple[str, str],
    project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async_url, sync_url = urls
    proj = project("async-shared", url=async_url)
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    monkeypatch.chdir(proj.root)
    use_models(proj, VIEW)
    text = autogenerate(proj, "item")
    assert text is not None and '"report"' not in text and '"item"' in text
    proj.alembic("upgrade", "head")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW report AS SELECT id FROM item")
    assert autogenerate(proj, "nothing") is None  # no create, no drop


def test_unknown_tables_dropped_unless_kept(sqlite_proj: Project) -> None:
    use_models(sqlite_proj, ITEM)
    engine = sa.create_engine(f"sqlite:///{sqlite_proj.root / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE legacy (id INTEGER)")
    text = autogenerate(sqlite_proj, "default")
    assert text is not None and 'op.drop_table("legacy")' in text
    for path in sqlite_proj.versions.glob("*.py"):
        path.unlink()
    sqlite_proj.set_option("keep_unknown_tables", "true")
    text = autogenerate(sqlite_proj, "kept")
    assert text is not None and "legacy" not in text and '"item"' in text


def test_column_order(sqlite_proj: Project) -> None:
    sqlite_proj.set_option("column_order", "id, *, created_at, updated_at")
    use_models(
        sqlite_proj,
        "metadata = sa.MetaData()\n"
        'sa.Table("t", metadata, sa.Column("created_at", sa.DateTime),'
        ' sa.Column("updated_at", sa.DateTime), sa.Column("name", sa.String(20)),'
        ' sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("code", sa.String(5)), sa.UniqueConstraint("code"))\n',
    )
    text = autogenerate(sqlite_proj)
    assert text is not None
    columns = re.findall(r'sa\.Column\("(\w+)"', text)
    assert columns == ["id", "name", "code", "created_at", "updated_at"]
    assert text.index('sa.Column("updated_at"') < text.index("sa.UniqueConstraint")
    sqlite_proj.alembic("upgrade", "head")
    engine = sa.create_engine(f"sqlite:///{sqlite_proj.root / 'app.db'}")
    with engine.connect() as conn:
        assert [c["name"] for c in sa.inspect(conn).get_columns("t")] == columns


def test_bad_column_order_is_one_line(sqlite_proj: Project) -> None:
    sqlite_proj.set_option("column_order", "id, name")
    use_models(sqlite_proj, ITEM)
    result = sqlite_proj.alembic("revision", "--autogenerate", "-m", "x", ok=False)
    assert "invalid column_order 'id, name'" in result.stderr
    assert not list(sqlite_proj.versions.glob("*.py"))


def test_user_hooks_compose_with_ours(sqlite_proj: Project) -> None:
    """Your include_object and process_revision_directives run with ours."""
    use_models(
        sqlite_proj,
        VIEW + 'sa.Table("secret", metadata, sa.Column("id", sa.Integer))\n',
    )
    sqlite_proj.env_py.write_text(
        sqlite_proj.env_py.read_text().replace(
            "**autogenerate_hooks(settings),",
            "**autogenerate_hooks(settings, include_object=lambda o, n, t, r, c:"
            ' n != "secret", process_revision_directives=lambda c, r, d:'
            ' setattr(d[0], "message", "renamed by user hook")),',
        )
    )
    text = autogenerate(sqlite_proj, "orig")
    assert text is not None
    assert '"secret"' not in text and '"report"' not in text and '"item"' in text
    assert text.startswith('"""renamed by user hook')


# -- at head, create_all + stamp --------------------------------------------------
def _branches(proj: Project) -> tuple[str, str]:
    a = proj.revision(
        "a", upgrade='op.create_table("t_a", sa.Column("id", sa.Integer))'
    )
    b = proj.revision(
        "b", upgrade='op.create_table("t_b", sa.Column("id", sa.Integer))',
        args="--head base --branch-label other",
    )  # fmt: skip
    return a, b


def test_check_at_head_with_branches(
    urls: tuple[str, str],
    project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async_url, sync_url = urls
    proj = project("async-shared", url=async_url, prepare=_branches)
    monkeypatch.chdir(proj.root)
    a, _ = proj.prepared
    cfg = Config(str(proj.ini))
    sync_engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)

    def at_head() -> set[bool]:
        async_engine = create_async_engine(async_url, poolclass=sa.pool.NullPool)

        async def from_async() -> bool:
            try:
                return await alembic_recipes.check_at_head_async(cfg, async_engine)
            finally:
                await async_engine.dispose()

        results = {
            alembic_recipes.check_at_head(cfg, sync_engine),
            alembic_recipes.check_at_head(
                cfg, create_async_engine(async_url, poolclass=sa.pool.NullPool)
            ),
            asyncio.run(from_async()),
        }
        with sync_engine.connect() as conn:
            results.add(alembic_recipes.check_at_head(cfg, conn))
            assert not conn.in_transaction()
        return results

    assert at_head() == {False}  # empty database
    proj.alembic("upgrade", a)
    assert at_head() == {False}  # one of two heads
    proj.alembic("upgrade", "heads")
    assert at_head() == {True}


def _item_revision(proj: Project) -> str:
    create = 'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True))'
    return proj.revision("item", upgrade=create, downgrade='op.drop_table("item")')


def _model() -> sa.MetaData:
    namespace: dict[str, object] = {"sa": sa}
    exec(ITEM, namespace)
    metadata = namespace["metadata"]
    assert isinstance(metadata, sa.MetaData)
    return metadata


def test_create_all_and_stamp_sqlite(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("async-shared", prepare=_item_revision)
    monkeypatch.chdir(proj.root)
    cfg = Config(str(proj.ini))
    engine = create_async_engine(f"sqlite+aiosqlite:///{proj.root / 'app.db'}")

    async def build() -> None:
        await alembic_recipes.create_all_and_stamp_async(cfg, _model(), engine)
        await engine.dispose()

    asyncio.run(build())
    out = proj.alembic("current").stdout
    assert f"{proj.prepared} (head)" in out
    assert "Running upgrade" not in proj.alembic("upgrade", "head").output


@pytest.mark.postgresql
def test_create_all_and_stamp_new_tenant(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant", url=pg.driver_url("psycopg"), prepare=_item_revision)
    proj.set_option("tenant_strategy", "schema")
    monkeypatch.chdir(proj.root)
    cfg = Config(str(proj.ini))
    engine = pg.engine()
    alembic_recipes.create_all_and_stamp(cfg, _model(), engine, schema="newco")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names(schema="newco"))
        assert tables == {"alembic_version", "item"}
        assert sa.inspect(conn).get_table_names(schema="public") == []
    status = proj.alembic("-x", "tenant=newco", "current").stderr
    assert f"newco: {proj.prepared} (at head)" in status
    assert (
        "already at head"
        in proj.alembic("-x", "tenant=newco", "upgrade", "head").stderr
    )
    with pytest.raises(Exception, match="invalid tenant name"):
        alembic_recipes.create_all_and_stamp(cfg, _model(), engine, schema="x; drop")
