"""The multitenant template's shared scope (``shared_scope``): tables that
exist once, beside the tenants', with their own version table and their own
part of every revision, migrated once before the tenants in the same command."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic_recipes.tenants.records.record import RECORD_TABLE
from support.processes import together
from support.projects import Project, assert_ruff_clean, set_body
from support.servers import ServerDB, tables, versions

MODELS = """import sqlalchemy as sa

shared = sa.MetaData()
plans = sa.Table(
    "plans", shared,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
)
metadata = sa.MetaData()
sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("plan_id", sa.ForeignKey(plans.c.id)),
)
"""


def shared_project(proj: Project, shared: str) -> None:
    """shared_scope on, env.py's two metadata from models.py."""
    proj.set_option("shared_scope", shared)
    (proj.root / "models.py").write_text(MODELS)
    text = proj.env_py.read_text()
    text = text.replace(
        "target_metadata = None", "from models import metadata as target_metadata"
    ).replace("shared_metadata = None", "from models import shared as shared_metadata")
    proj.env_py.write_text(text)


def autogenerate(proj: Project, *args: str) -> tuple[str, str]:
    out = proj.alembic(*args, "revision", "--autogenerate", "-m", "models").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    assert_ruff_clean(path)
    text = path.read_text()
    return re.findall(r'^revision: str = "(\w+)"', text, re.M)[0], text


def schema_tables(engine: sa.Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema IN ('public', 'acme', 'globex')"
            )
        )
        # (the fleet's run record lives in the shared schema: not checked here)
        return {(schema, name) for schema, name in rows if name != RECORD_TABLE}


@pytest.fixture
def pg_project(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, sa.Engine]:
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    shared_project(proj, "public")
    monkeypatch.chdir(proj.root)
    return proj, pg.engine()


def test_schema_strategy(pg_project: tuple[Project, sa.Engine]) -> None:
    proj, engine = pg_project
    rev, text = autogenerate(proj, "-x", "tenant=acme")
    shared_part = text[text.index("def upgrade_shared()") :]
    assert 'op.create_table(\n        "plans"' in shared_part
    tenant_part = text[text.index("def upgrade()") : text.index("def upgrade_shared")]
    assert '"accounts"' in tenant_part and '"plans"' not in tenant_part
    # offline: the shared section first
    sql = proj.alembic("-x", "tenant=all", "upgrade", "head", "--sql").stdout
    assert sql.index("-- Shared scope public") < sql.index("-- Tenant acme")
    assert 'SET search_path TO "acme", "public"' in sql
    out = proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert out.index("shared scope public: upgraded") < out.index("] acme: upgraded")
    assert schema_tables(engine) == {
        ("public", "plans"), ("public", "alembic_version"),
        ("acme", "accounts"), ("acme", "alembic_version"),
        ("globex", "accounts"), ("globex", "alembic_version"),
    }  # fmt: skip
    with engine.connect() as conn:
        for schema in ("public", "acme", "globex"):
            version = f"SELECT version_num FROM {schema}.alembic_version"
            assert conn.scalars(sa.text(version)).all() == [rev]
        # the tenants' foreign key is real, and points at the shared table
        referenced = conn.scalar(
            sa.text(
                "SELECT confrelid::regclass::text FROM pg_constraint WHERE contype ="
                " 'f' AND conrelid = 'globex.accounts'::regclass"
            )
        )
        assert referenced == "plans"  # public is on the search_path
        conn.execute(sa.text("INSERT INTO public.plans (id, name) VALUES (1, 'pro')"))
        conn.execute(sa.text("INSERT INTO acme.accounts (plan_id) VALUES (1)"))
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text("INSERT INTO acme.accounts (plan_id) VALUES (2)"))
        conn.rollback()
    for scope in ("acme", "shared"):  # autogenerate: nothing left, either side
        check = proj.alembic("-x", f"tenant={scope}", "check").output
        assert "No new upgrade operations detected" in check
    status = proj.alembic("-x", "tenant=all", "current").stdout.splitlines()
    assert status == [f"shared: {rev} (head)", f"acme: {rev} (head)",
                      f"globex: {rev} (head)"]  # fmt: skip
    out = proj.alembic("-x", "tenant=all", "downgrade", "base").stderr
    assert out.index("] globex: downgraded") < out.index("shared scope public: down")
    assert {name for _, name in schema_tables(engine)} == {"alembic_version"}


def test_shared_alone_then_one_tenant(pg_project: tuple[Project, sa.Engine]) -> None:
    proj, engine = pg_project
    rev, _ = autogenerate(proj, "-x", "tenant=shared")  # the shared part only
    proj.alembic("-x", "tenant=shared", "upgrade", "head")
    assert schema_tables(engine) == {("public", "plans"), ("public", "alembic_version")}
    # the tenant part of that revision was written too (against no tenant yet?)
    proj.alembic("-x", "tenant=acme", "upgrade", "head")
    assert ("acme", "alembic_version") in schema_tables(engine)
    with engine.connect() as conn:
        assert conn.scalars(sa.text("SELECT * FROM public.alembic_version")).all() == [
            rev
        ]


def test_bad_input_sends_no_sql(pg_project: tuple[Project, sa.Engine]) -> None:
    proj, engine = pg_project
    proj.revision("empty")
    for args, message in (
        (["-x", "tenant=public"], "invalid tenant name 'public' from -x tenant"),
        ([], "no tenant given"),
    ):
        result = proj.alembic(*args, "upgrade", "head", ok=False)
        assert result.code == 255 and message in result.output
        assert schema_tables(engine) == set()
    proj.set_option("shared_scope", "common")
    result = proj.alembic("-x", "tenant=acme,common", "upgrade", "head", ok=False)
    assert "FAILED: 'common' is the shared scope (shared_scope), not a tenant" in (
        result.output
    )
    proj.set_option("shared_scope", "Not OK")
    result = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert "FAILED: invalid shared_scope 'Not OK'" in result.output
    assert schema_tables(engine) == set()


def test_revisions_from_before_the_shared_scope(
    project: Callable[..., Project],
) -> None:
    """Database strategy on SQLite.  A project adds shared_scope later: its
    old revisions (no upgrade_shared) do nothing in the shared database."""
    proj = project("multitenant")
    notes = 'op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))'
    old = proj.revision(
        "tenant table", upgrade=notes, downgrade='op.drop_table("notes")'
    )
    proj.alembic("-x", "tenant=acme", "upgrade", "head")  # before: one scope
    shared_project(proj, "shared")
    proj.set_option("tenants_pattern", "*")
    new = proj.revision("shared table")
    path = proj.revision_file(new)
    text = set_body(
        path.read_text(),
        "upgrade_shared",
        'op.create_table("plans", sa.Column("id", sa.Integer, primary_key=True))',
    )
    path.write_text(set_body(text, "downgrade_shared", 'op.drop_table("plans")'))
    out = proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    db = f"sqlite:///{proj.root}/tenants"
    assert tables(f"{db}/shared.db") == {"plans", "alembic_version"}
    assert versions(f"{db}/shared.db") == [new]
    for tenant in ("acme", "globex"):  # tenants_pattern did not take shared.db
        assert tables(f"{db}/{tenant}.db") == {"notes", "alembic_version"}
        assert versions(f"{db}/{tenant}.db") == [new]
    assert "Tenants: 2 total" in out
    proj.alembic("-x", "tenant=shared", "downgrade", old)
    assert tables(f"{db}/shared.db") == {"alembic_version"}
    assert versions(f"{db}/shared.db") == [old]
    assert versions(f"{db}/acme.db") == [new]


@pytest.mark.concurrency
def test_replicas_migrate_the_shared_scope_once(
    pg_project: tuple[Project, sa.Engine],
) -> None:
    """Four processes run `-x tenant=all upgrade head` at once: the shared
    scope's lock makes each revision's shared part run exactly once."""
    proj, engine = pg_project
    proj.set_option("tenants", "acme, globex")
    proj.revision(
        "shared counter",
        upgrade_shared='op.create_table("runs", sa.Column("id", sa.Integer))\n'
        'op.execute("INSERT INTO runs VALUES (1)")',
        upgrade='op.create_table("notes", sa.Column("id", sa.Integer))',
    )
    runs = together(proj, 4, "-x", "tenant=all", "upgrade", "head")
    assert [run.code for run in runs] == [0, 0, 0, 0], runs[0].stderr
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM public.runs")) == 1
    assert {name for schema, name in schema_tables(engine) if schema != "public"} == {
        "notes",
        "alembic_version",
    }
