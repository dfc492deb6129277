"""alembic-gauntlet's PostgreSQL suite, unmodified -- as docs/testing.md
gives it -- on projects generated from the templates: it hands env.py
``config.attributes["target_schema"]`` (a fresh schema per test) and a
connection, and checks every revision up and down there, the models against
the migrated schema, and naming conventions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import BIN
from support.projects import Project, autogenerate_two
from support.servers import ServerDB

pytestmark = [pytest.mark.postgresql, pytest.mark.third_party]

MODELS = """\
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))


class Invoice(Base):
    __tablename__ = "invoice"
    __table_args__ = (sa.Index("idx_invoice_customer_id", "customer_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
"""
MORE = """

class Line(Base):
    __tablename__ = "line"
    __table_args__ = (sa.Index("idx_line_sku", "sku"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(sa.ForeignKey("invoice.id"))
    sku: Mapped[str] = mapped_column(sa.String(20))
"""
TESTING_PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
GAUNTLET_TESTS = 7


def _use_declarative_models(proj: Project) -> None:
    text = proj.env_py.read_text()
    new = text.replace(
        "target_metadata = None",
        "from models import Base\n\ntarget_metadata = Base.metadata",
    ).replace(
        "target_metadata: dict[str, MetaData] = {}",
        "from models import Base\n\n"
        'target_metadata = {"main": Base.metadata, "analytics": Base.metadata}',
    )
    assert new != text
    proj.env_py.write_text(new)


def _two_revisions(proj: Project, *args: str) -> None:
    autogenerate_two(proj, MODELS, MORE, *args)
    proj.alembic(*args, "downgrade", "base")


def _page_block(marker: str) -> str:
    found = re.search(
        rf"<!-- {marker} -->\n```python\n(.*?)```", TESTING_PAGE.read_text(), re.S
    )
    assert found, f"no {marker} block in docs/testing.md"
    return found.group(1)


def _run_gauntlet(proj: Project, pg: ServerDB, *extra: str) -> str:
    tests = proj.root / "tests"
    tests.mkdir()
    suite = "\n".join([_page_block("gauntlet suite"), *map(_page_block, extra)])
    (tests / "test_migrations.py").write_text(suite)
    (proj.root / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\npythonpath = .\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "no:pytest_alembic", "-v", "tests"],
        cwd=proj.root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
             "MIGRATION_DB_URL": pg.driver_url("asyncpg")},
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(rf"\b{GAUNTLET_TESTS} passed\b", out), out
    return out


@pytest.mark.parametrize(
    ("template", "driver"),
    [
        ("data-flag", "psycopg"),
        ("async-shared", "asyncpg"),
        ("data-flag-pyproject", "psycopg"),
        ("async-shared-pyproject", "asyncpg"),
    ],
)
def test_single_database_templates(
    template: str,
    driver: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = project(template, url=pg.driver_url(driver))
    monkeypatch.chdir(proj.root)
    _use_declarative_models(proj)
    _two_revisions(proj)
    with pg.engine().begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
        assert not conn.exec_driver_sql(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public'"
        ).all()
    _run_gauntlet(proj, pg)
    with pg.engine().connect() as conn:  # every test schema dropped, public untouched
        schemas = conn.execute(
            sa.text(
                "SELECT schema_name FROM information_schema.schemata"
                " WHERE schema_name LIKE 'test_mig_%'"
            )
        ).all()
        assert schemas == []


@pytest.mark.parametrize("template", ["multitenant", "multitenant-pyproject"])
def test_multitenant_as_generated(
    template: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generated multitenant project (SQLite files per tenant), either
    flavour: the gauntlet's schema is the tenant, on its PostgreSQL connection."""
    proj = project(template)
    monkeypatch.chdir(proj.root)
    _use_declarative_models(proj)
    _two_revisions(proj, "-x", "tenant=acme")
    _run_gauntlet(proj, pg)


def test_target_schema_from_the_command_line(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-x target_schema=NAME`` (the attribute's -x form): the revisions and
    the version table land in that schema, created for it; the default
    schema stays empty.  Not PostgreSQL, or a bad name: one line, nothing run."""
    proj = project("data-flag", url=pg.driver_url("psycopg"))
    monkeypatch.chdir(proj.root)
    proj.revision(
        "r1", schema_upgrades='op.create_table("t", sa.Column("id", sa.Integer))'
    )
    proj.alembic("-x", "target_schema=reports", "upgrade", "head")
    with pg.engine().connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema IN ('public', 'reports') ORDER BY 2"
            )
        ).all()
    assert found == [("reports", "alembic_version"), ("reports", "t")]
    bad = proj.alembic("-x", f"target_schema={'s' * 64}", "upgrade", "head", ok=False)
    assert bad.code == 255
    assert "expected a PostgreSQL schema name of 1 to 63 characters" in bad.stderr
    proj.set_option("sqlalchemy.url", "sqlite:///%(here)s/app.db")
    other = proj.alembic("-x", "target_schema=reports", "upgrade", "head", ok=False)
    assert (
        "FAILED: target_schema 'reports' is a PostgreSQL schema; the database"
        " is sqlite" in other.output
    )
    assert (
        not (proj.root / "app.db").exists()
        or not sa.inspect(
            sa.create_engine(f"sqlite:///{proj.root / 'app.db'}")
        ).get_table_names()
    )


@pytest.mark.parametrize("template", ["multidb-mixed", "multidb-mixed-pyproject"])
def test_multidb_mixed_as_generated(
    template: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generated multidb-mixed project (two SQLite files), either flavour:
    its main database migrated into the suite's schema, named by the page's
    fixture."""
    proj = project(template)
    monkeypatch.chdir(proj.root)
    _use_declarative_models(proj)
    _two_revisions(proj)
    _run_gauntlet(proj, pg, "gauntlet multidb-mixed")
