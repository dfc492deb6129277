"""The ``<name>-pyproject`` flavours: options in pyproject.toml's [tool.alembic]
(Alembic >= 1.16), read through Alembic's own API, through the real CLI."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import alembic
import pytest
import sqlalchemy as sa
from support.projects import Project
from support.servers import ServerDB, tables, versions

pytestmark = [
    pytest.mark.pyproject,
    pytest.mark.skipif(
        tuple(int(p) for p in alembic.__version__.split(".")[:2]) < (1, 16),
        reason="pyproject.toml configuration needs Alembic >= 1.16",
    ),
]

ACCOUNT = 'op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))'
EXISTING = '[project]\nname = "app"\nversion = "1.0"\n'


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Project]:
    """``alembic init -t NAME-pyproject`` beside an existing pyproject.toml."""

    def init(template: str) -> Project:
        root = tmp_path / template
        root.mkdir()
        (root / "pyproject.toml").write_text(EXISTING)
        proj = Project(root, template)
        proj.alembic("init", "-t", f"{template}-pyproject", "migrations")
        monkeypatch.chdir(root)
        return proj

    return init


def set_toml(proj: Project, key: str, value: str) -> None:
    """Set ``key = value`` (TOML) in [tool.alembic], editing text like a user."""
    path = proj.root / "pyproject.toml"
    text = path.read_text()
    pattern = re.compile(rf"^#? ?{re.escape(key)} = .*$", re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: f"{key} = {value}", text, count=1)
    else:
        text = text.replace("[tool.alembic]\n", f"[tool.alembic]\n{key} = {value}\n")
    path.write_text(text)


def tool_alembic(proj: Project) -> dict[str, object]:
    data = tomllib.loads((proj.root / "pyproject.toml").read_text())
    assert data["project"]["name"] == "app"  # the user's table is kept
    return dict(data["tool"]["alembic"])


@pytest.mark.parametrize(
    "template", ["async-shared", "data-flag", "multidb-mixed", "multitenant"]
)
def test_init_puts_our_options_in_tool_alembic(
    template: str, make: Callable[[str], Project]
) -> None:
    proj = make(template)
    options = tool_alembic(proj)
    assert options["script_location"] == f"{proj.root}/migrations".replace(
        str(proj.root), "%(here)s"
    )
    assert options["migration_lock"] is True
    assert options["skip_empty_revisions"] is True
    ini = proj.ini.read_text()
    assert "sqlalchemy.url = " in ini and "migration_lock" not in ini
    assert "skip_empty_revisions" not in ini and "script_location" not in ini
    args = ["-x", "tenant=acme"] if template == "multitenant" else []
    proj.revision("one", **{
        "async-shared": {"upgrade": ACCOUNT},
        "data-flag": {"schema_upgrades": ACCOUNT},
        "multidb-mixed": {"upgrade_main": ACCOUNT},
        "multitenant": {"upgrade": ACCOUNT},
    }[template])  # fmt: skip
    proj.alembic(*args, "upgrade", "head")
    database = {"multidb-mixed": "main.db", "multitenant": "tenants/acme.db"}
    url = f"sqlite:///{proj.root}/{database.get(template, 'app.db')}"
    assert "account" in tables(url)


def test_data_flag_reads_data_migrations_from_toml(
    make: Callable[[str], Project],
) -> None:
    proj = make("data-flag")
    set_toml(proj, "data_migrations", "true")  # a TOML boolean
    proj.revision(
        "seed",
        schema_upgrades='op.create_table("t", sa.Column("name", sa.String(9)))',
        data_upgrades="op.execute(\"INSERT INTO t VALUES ('one')\")",
    )
    proj.alembic("upgrade", "head")
    engine = sa.create_engine(f"sqlite:///{proj.root}/app.db")
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM t")) == 1


def test_multitenant_and_multidb_read_lists_from_toml(
    make: Callable[[str], Project],
) -> None:
    tenants = make("multitenant")
    set_toml(tenants, "tenants", '["north", "south"]')
    rev = tenants.revision("one", upgrade=ACCOUNT)
    out = tenants.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert "[2/2] south: upgraded" in out
    assert versions(f"sqlite:///{tenants.root}/tenants/north.db") == [rev]
    multi = make("multidb-mixed")
    set_toml(multi, "databases", '["main"]')
    text = multi.ini.read_text()
    assert "[analytics]" in text  # the database sections stay in alembic.ini
    multi.alembic("revision", "-m", "one")
    (path,) = multi.versions.glob("*.py")
    assert "def upgrade_main()" in path.read_text()
    assert "upgrade_analytics" not in path.read_text()
    multi.alembic("upgrade", "head")
    assert versions(f"sqlite:///{multi.root}/main.db") != []
    assert not (multi.root / "analytics.db").exists()


def test_bad_and_misspelled_toml_options(make: Callable[[str], Project]) -> None:
    proj = make("multitenant")
    set_toml(proj, "exclude_views", '"maybe"')
    bad = proj.alembic("-x", "tenant=acme", "current", ok=False)
    assert bad.code == 255
    assert (
        "FAILED: invalid value 'maybe' for [tool.alembic] exclude_views in"
        " pyproject.toml"
    ) in bad.stdout
    set_toml(proj, "exclude_views", "true")
    set_toml(proj, "continue_on_eror", "true")
    set_toml(proj, "fleet_workers", "2")  # a TOML integer
    out = proj.alembic("-x", "tenant=all", "upgrade", "head").stderr
    assert (
        "unknown option continue_on_eror in [tool.alembic] is ignored:"
        " did you mean continue_on_error?"
    ) in out
    for value, shown in (
        ('{ a = "b" }', "{'a': 'b'} is a TOML dict"),
        ('["10s"]', "['10s'] is a TOML list"),
        ("true", "True is a TOML bool"),
    ):  # each a one-line FAILED before any SQL: nothing created
        set_toml(proj, "fleet_workers", value)
        bad = proj.alembic("-x", "tenant=newco", "upgrade", "head", ok=False)
        (line,) = bad.stdout.splitlines()
        assert (
            f"FAILED: invalid [tool.alembic] fleet_workers in pyproject.toml: {shown};"
            " expected a string or a number (a whole number"
        ) in line
        assert not (proj.root / "tenants" / "newco.db").exists()


@pytest.mark.postgresql
def test_multitenant_schema_strategy_from_toml_on_postgresql(
    make: Callable[[str], Project], pg: ServerDB
) -> None:
    proj = make("multitenant")
    set_toml(proj, "tenant_strategy", '"schema"')
    proj.set_option("sqlalchemy.url", pg.driver_url("psycopg"))
    proj.revision("one", upgrade=ACCOUNT)
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    with pg.engine().connect() as conn:
        for schema in ("acme", "globex"):
            assert sa.inspect(conn).has_table("account", schema=schema)
