"""pytest-alembic's built-in tests (the experimental downgrade_leaves_no_trace
included) pass on projects generated from every template, with the fixtures
the documentation's "Testing your migrations" page gives, copied from it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import alembic
import pytest
from support.processes import BIN
from support.projects import Project, autogenerate_two, use_models
from support.servers import ServerDB

pytestmark = pytest.mark.third_party

TESTING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"

MODELS = """\
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table("customer", metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("name", sa.String(50), nullable=False))
sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("customer_id", sa.ForeignKey("customer.id"), nullable=False))
"""
MORE = """
sa.Table("line", metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("invoice_id", sa.ForeignKey("invoice.id"), nullable=False),
         sa.Column("sku", sa.String(20)))
sa.Index("ix_line_sku", metadata.tables["line"].c.sku)
"""
PYTEST_INI = """\
[pytest]
pytest_alembic_include_experimental = downgrade_leaves_no_trace
"""
BUILT_IN = [
    "test_single_head_revision",
    "test_upgrade",
    "test_model_definitions_match_ddl",
    "test_up_down_consistency",
    "test_downgrade_leaves_no_trace",
]


def readme_fixtures(template: str) -> str:
    """The ``conftest.py`` the testing page gives for *template*."""
    block = re.search(
        rf"<!-- conftest: {re.escape(template)} -->\n```python\n(.*?)```",
        TESTING_PAGE.read_text(),
        re.S,
    )
    assert block, f"no conftest for {template} in docs/testing.md"
    return block.group(1)


def run_pytest_alembic(proj: Project, conftest: str, **env: str) -> str:
    tests = proj.root / "tests"
    tests.mkdir(exist_ok=True)
    (tests / "conftest.py").write_text(conftest)
    (proj.root / "pytest.ini").write_text(PYTEST_INI)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--test-alembic", "-p", "no:cacheprovider",
         "-v", "-p", "no:xdist", "tests"],
        cwd=proj.root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env},
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for name in BUILT_IN:
        assert re.search(rf"{name}\S* PASSED", out), f"{name} did not pass:\n{out}"
    return out


def fresh(proj: Project, *sqlite_files: str) -> None:
    """Drop the SQLite files the revisions were generated against."""
    for name in sqlite_files:
        (proj.root / name).unlink(missing_ok=True)


# -- one database ---------------------------------------------------------------
@pytest.mark.parametrize("template", ["async-shared", "data-flag"])
def test_single_database_on_sqlite(
    template: str, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(template)
    monkeypatch.chdir(proj.root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE)
    fresh(proj, "app.db")
    run_pytest_alembic(proj, readme_fixtures(template), TEST_DATABASE_URL="")


@pytest.mark.parametrize("data", ["true", "false"])
def test_data_flag_with_data_parts(
    data: str, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag")
    monkeypatch.chdir(proj.root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE)
    first = sorted(proj.versions.glob("*_customers.py"))[0]
    text = first.read_text()
    text = text.replace(
        "    Use op.execute(...) or op.get_bind(); they run in the same transaction.\n"
        '    """\n',
        "    Use op.execute(...) or op.get_bind(); they run in the same transaction.\n"
        '    """\n'
        "    op.execute(\"INSERT INTO customer (id, name) VALUES (1, 'acme')\")\n",
    ).replace(
        '    """Undo data_upgrades(); runs only if data_upgrades() ran."""\n',
        '    """Undo data_upgrades(); runs only if data_upgrades() ran."""\n'
        '    op.execute("DELETE FROM customer")\n',
    )
    first.write_text(text)
    fresh(proj, "app.db")
    conftest = readme_fixtures("data-flag").replace(
        'config.attributes["data"] = True',
        f'config.attributes["data"] = {data.title()}',
    )
    run_pytest_alembic(proj, conftest, TEST_DATABASE_URL="")


@pytest.mark.postgresql
@pytest.mark.parametrize("template", ["async-shared", "data-flag"])
def test_single_database_on_postgresql(
    template: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = "asyncpg" if template == "async-shared" else "psycopg"
    proj = project(template, url=pg.driver_url(driver))
    monkeypatch.chdir(proj.root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE)
    proj.alembic("downgrade", "base")
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    run_pytest_alembic(
        proj, readme_fixtures(template), TEST_DATABASE_URL=pg.driver_url("psycopg")
    )


# -- multitenant: one tenant --------------------------------------------------------
def test_multitenant_database_strategy_on_sqlite(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE, "-x", "tenant=acme")
    fresh(proj, "tenants/acme.db")
    run_pytest_alembic(proj, readme_fixtures("multitenant"), TEST_DATABASE_URL="")


@pytest.mark.postgresql
def test_multitenant_schema_strategy_on_postgresql(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    monkeypatch.chdir(proj.root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE, "-x", "tenant=acme")
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA acme CASCADE")
    run_pytest_alembic(
        proj,
        readme_fixtures("multitenant"),
        TEST_DATABASE_URL=pg.driver_url("psycopg"),
    )


# -- multidb-mixed: each database --------------------------------------------------
def test_multidb_each_database(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multidb-mixed")
    monkeypatch.chdir(proj.root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE)
    fresh(proj, "main.db", "analytics.db")
    for database in ("main", "analytics"):
        run_pytest_alembic(proj, readme_fixtures("multidb-mixed"), ALEMBIC_DB=database)


# -- the pyproject flavours: options in [tool.alembic] -----------------------------
PYPROJECT_CASES = {
    "async-shared": ((), ("app.db",), {"TEST_DATABASE_URL": ""}),
    "data-flag": ((), ("app.db",), {"TEST_DATABASE_URL": ""}),
    "multitenant": (
        ("-x", "tenant=acme"),
        ("tenants/acme.db",),
        {"TEST_DATABASE_URL": ""},
    ),
    "multidb-mixed": ((), ("main.db", "analytics.db"), {"ALEMBIC_DB": "main"}),
}


@pytest.mark.pyproject
@pytest.mark.skipif(
    tuple(int(p) for p in alembic.__version__.split(".")[:2]) < (1, 16),
    reason="pyproject.toml configuration needs Alembic >= 1.16",
)
@pytest.mark.parametrize("template", sorted(PYPROJECT_CASES))
def test_pyproject_flavours(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``-pyproject`` flavour, unmodified pytest-alembic, the same fixtures."""
    args, files, env = PYPROJECT_CASES[template]
    root = tmp_path / "app"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n')
    proj = Project(root, f"{template}-pyproject")
    proj.alembic("init", "-t", f"{template}-pyproject", "migrations")
    monkeypatch.chdir(root)
    use_models(proj)
    autogenerate_two(proj, MODELS, MORE, *args)
    fresh(proj, *files)
    run_pytest_alembic(proj, readme_fixtures(template), **env)
