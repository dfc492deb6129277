"""data-flag template through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic_recipes import DataSettings
from alembic_recipes.configuration.options import InvalidOption
from support.processes import BIN
from support.projects import Project, assert_ruff_clean
from support.servers import ServerDB

SCHEMA1 = """\
op.create_table(
    "log",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry", sa.String(20), nullable=False),
)
"""


@dataclass
class Env:
    """A data-flag project and a way to look at its database."""

    proj: Project
    engine: sa.Engine
    rev1: str = ""
    rev2: str = ""

    def log(self) -> list[str]:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("log"):
                return []
            return list(conn.scalars(sa.text("SELECT entry FROM log ORDER BY id")))

    def recorded(self) -> set[str]:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_data_version"):
                return set()
            return set(
                conn.scalars(sa.text("SELECT revision FROM alembic_data_version"))
            )

    def version(self) -> set[str]:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return set()
            return set(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))

    def tables(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str | None, sa.Engine]:
    """(URL for alembic.ini, None for the embedded default; engine to inspect)."""
    if request.param == "sqlite":
        return None, sa.create_engine(f"sqlite:///{tmp_path / 'app' / 'app.db'}")
    db: ServerDB = request.getfixturevalue("pg")
    return db.driver_url("psycopg"), db.engine()


def _two_revisions(proj: Project) -> tuple[str, str]:
    """1 creates ``log`` (data: 'data1'); 2 creates ``t2`` (its data writes 'data2'
    and a row in t2, so it fails unless schema 2 ran first)."""
    rev1 = proj.revision(
        "one",
        schema_upgrades=SCHEMA1,
        schema_downgrades='op.drop_table("log")',
        data_upgrades="op.execute(\"INSERT INTO log (entry) VALUES ('data1')\")",
        data_downgrades="op.execute(\"INSERT INTO log (entry) VALUES ('undo1')\")",
    )
    rev2 = proj.revision(
        "two",
        schema_upgrades=(
            'op.create_table("t2", sa.Column("id", sa.Integer, primary_key=True))'
        ),
        schema_downgrades='op.drop_table("t2")',
        data_upgrades=(
            "op.execute(\"INSERT INTO log (entry) VALUES ('data2')\")\n"
            'op.execute("INSERT INTO t2 (id) VALUES (1)")'
        ),
        data_downgrades=(
            'op.execute("DELETE FROM t2")\n'
            "op.execute(\"INSERT INTO log (entry) VALUES ('undo2')\")"
        ),
    )
    return rev1, rev2


@pytest.fixture
def env(
    project: Callable[..., Project],
    backend: tuple[str | None, sa.Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> Env:
    """A data-flag project with :func:`_two_revisions` on the backend under test.

    The working directory is the project's, as for an application (Alembic
    before 1.16 writes a cwd-relative ``script_location``).
    """
    url, engine = backend
    proj = project("data-flag", url=url, prepare=_two_revisions)
    monkeypatch.chdir(proj.root)
    return Env(proj, engine, *proj.prepared)


def test_default_is_off_and_pending_is_reported(env: Env) -> None:
    out = env.proj.alembic("upgrade", "head").output
    assert env.version() == {env.rev2}
    assert env.log() == []
    assert env.recorded() == set()
    assert f"pending for 2 revision(s): {env.rev1}, {env.rev2}" in out
    current = env.proj.alembic("current").output
    assert f"{env.rev1}, {env.rev2} (run them with -x data=true)" in current


def test_data_true_runs_schema_then_data_per_revision(env: Env) -> None:
    env.proj.alembic("-x", "data=true", "upgrade", "head")
    assert env.log() == ["data1", "data2"]
    assert env.recorded() == {env.rev1, env.rev2}
    with env.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM t2")) == 1
    # a second run does nothing
    env.proj.alembic("-x", "data=true", "upgrade", "head")
    assert env.log() == ["data1", "data2"]


def test_catch_up_runs_skipped_data_once_in_order(env: Env) -> None:
    env.proj.alembic("upgrade", "head")
    assert env.log() == []
    out = env.proj.alembic("-x", "data=yes", "upgrade", "head").output
    assert "catch-up" in out
    assert env.log() == ["data1", "data2"]
    assert env.recorded() == {env.rev1, env.rev2}
    env.proj.alembic("-x", "data=on", "upgrade", "head")
    assert env.log() == ["data1", "data2"]
    assert "pending" not in env.proj.alembic("current").output


def test_catch_up_before_new_revisions(env: Env) -> None:
    env.proj.alembic("upgrade", env.rev1)
    env.proj.alembic("-x", "data=1", "upgrade", "head")
    assert env.log() == ["data1", "data2"]
    assert env.version() == {env.rev2}


def test_downgrade_runs_data_downgrades_first_only_if_recorded(env: Env) -> None:
    env.proj.alembic("upgrade", env.rev1)
    env.proj.alembic("-x", "data=true", "upgrade", "head")  # both recorded
    # recorded: data_downgrades (needs t2, so it ran before schema) then schema
    env.proj.alembic("downgrade", "-1")
    assert env.log() == ["data1", "data2", "undo2"]
    assert env.recorded() == {env.rev1}
    assert "t2" not in env.tables()
    # not recorded: upgrade 2 without data, then downgrade: no data_downgrades
    env.proj.alembic("upgrade", "head")
    env.proj.alembic("downgrade", "-1")
    assert env.log() == ["data1", "data2", "undo2"]
    assert env.recorded() == {env.rev1}
    env.proj.alembic("downgrade", "base")
    assert env.recorded() == set()
    assert env.version() == set()


TRUTHY = ["true", "TRUE", "Yes", "on", "1"]
FALSY = ["false", "False", "NO", "off", "0"]


def _data_flag(env: Env, word: str) -> bool:
    """What env.py reads for ``-x data=<word>`` (DataSettings.load)."""
    config = Config(str(env.proj.ini))
    config.cmd_opts = argparse.Namespace(x=[f"data={word}"])
    return DataSettings.load(config).data


def test_truthy_spellings(env: Env) -> None:
    env.proj.alembic("-x", "data=Yes", "upgrade", env.rev1)
    assert env.log() == ["data1"]
    assert all(_data_flag(env, word) for word in TRUTHY)


def test_falsy_spellings(env: Env) -> None:
    env.proj.set_option("data_migrations", "true")  # -x overrides the ini
    env.proj.alembic("-x", "data=off", "upgrade", env.rev1)
    assert env.version() == {env.rev1}
    assert env.log() == []
    assert not any(_data_flag(env, word) for word in FALSY)


def test_ini_default_on(env: Env) -> None:
    env.proj.set_option("data_migrations", "true")
    env.proj.alembic("upgrade", "head")
    assert env.log() == ["data1", "data2"]


def test_invalid_values_fail_before_any_sql(env: Env) -> None:
    """One bad value through the CLI, on the database; each where env.py reads
    it (DataSettings.load, before any connection)."""
    before = env.tables()
    result = env.proj.alembic("-x", "data=maybe", "upgrade", "head", ok=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    expected = "expected one of true/yes/on/false/no/off/1/0 (case-insensitive)"
    assert lines[0].endswith(f"invalid value 'maybe' for -x data: {expected}")
    assert env.tables() == before == set()
    for x_arg in ["data=maybe", "data=", "data"]:
        config = Config(str(env.proj.ini))
        config.cmd_opts = argparse.Namespace(x=[x_arg])
        value = x_arg.partition("=")[2]
        with pytest.raises(InvalidOption) as info:
            DataSettings.load(config)
        assert str(info.value) == f"invalid value {value!r} for -x data: {expected}"


def test_invalid_ini_value(env: Env) -> None:
    env.proj.set_option("data_migrations", "perhaps")
    result = env.proj.alembic("upgrade", "head", ok=False)
    assert "'perhaps' for ini option data_migrations" in result.stderr
    assert env.tables() == set()


def test_offline_sql_includes_data_only_when_on(env: Env) -> None:
    off = env.proj.alembic("upgrade", "head", "--sql").stdout
    on = env.proj.alembic("-x", "data=true", "upgrade", "head", "--sql").stdout
    assert "CREATE TABLE log" in off and "CREATE TABLE log" in on
    assert "data1" not in off and "alembic_data_version" not in off
    assert (
        on.index("CREATE TABLE log") < on.index("'data1'") < on.index("CREATE TABLE t2")
    )
    assert on.index("CREATE TABLE t2") < on.index("'data2'")
    assert f"INSERT INTO alembic_data_version (revision) VALUES ('{env.rev2}')" in on
    down_on = env.proj.alembic(
        "-x", "data=true", "downgrade", f"{env.rev2}:{env.rev1}", "--sql"
    ).stdout
    assert down_on.index("'undo2'") < down_on.index("DROP TABLE t2")
    down_off = env.proj.alembic("downgrade", f"{env.rev2}:{env.rev1}", "--sql").stdout
    assert "undo2" not in down_off and "DROP TABLE t2" in down_off
    assert env.tables() == set()  # offline connects to nothing


def test_failing_data_part_rolls_back_whole_run(env: Env) -> None:
    rev3 = env.proj.revision("three", data_upgrades='op.execute("SELECT * FROM nope")')
    result = env.proj.alembic("-x", "data=true", "upgrade", "head", ok=False)
    assert "nope" in result.output
    assert env.version() == set()
    assert env.tables() == set()
    assert rev3


def test_programmatic_flag_via_attributes(env: Env) -> None:
    cfg = Config(str(env.proj.ini))
    cfg.attributes["data"] = True
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
    assert env.log() == ["data1", "data2"]
    cfg.attributes["data"] = "maybe"
    with pytest.raises(Exception, match=r"'maybe' for config\.attributes"):
        command.upgrade(cfg, "head")


def test_pending_data_revisions_helper(env: Env) -> None:
    from alembic_recipes import pending_data_revisions

    env.proj.alembic("upgrade", "head")
    cfg = Config(str(env.proj.ini))
    cfg.attributes["configure_logger"] = False
    assert pending_data_revisions(cfg) == [env.rev1, env.rev2]
    env.proj.alembic("-x", "data=true", "upgrade", "head")
    assert pending_data_revisions(cfg) == []


def test_autogenerate_goes_to_schema_functions_and_is_ruff_clean(env: Env) -> None:
    env.proj.alembic("-x", "data=true", "upgrade", "head")  # creates the record table
    (env.proj.root / "models.py").write_text(
        "import sqlalchemy as sa\n\n"
        "metadata = sa.MetaData()\n"
        'sa.Table("log", metadata, sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("entry", sa.String(20), nullable=False))\n'
        'sa.Table("t2", metadata, sa.Column("id", sa.Integer, primary_key=True))\n'
        'sa.Table("customer", metadata, sa.Column("id", sa.Integer, primary_key=True),'
        ' sa.Column("name", sa.String(50)))\n'
    )
    env_text = env.proj.env_py.read_text()
    env.proj.env_py.write_text(
        env_text.replace(
            "target_metadata = None", "from models import metadata as target_metadata"
        )
    )
    out = env.proj.alembic("revision", "--autogenerate", "-m", "auto").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    text = path.read_text()
    schema_up = text.split("def schema_upgrades")[1].split("def schema_downgrades")[0]
    schema_down = text.split("def schema_downgrades")[1].split("def data_upgrades")[0]
    data = text.split("def data_upgrades")[1]
    assert "op.create_table(" in schema_up and '"customer"' in schema_up
    assert 'op.drop_table("customer")' in schema_down
    assert "op.create_table" not in data and "op.drop_table" not in data
    assert "alembic_data_version" not in text
    assert_ruff_clean(path)
    env.proj.alembic("upgrade", "head")
    assert "customer" in env.tables()
    assert BIN


def test_async_url_with_data_and_catch_up(
    project: Callable[..., Project], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any URL works: sqlite+aiosqlite here, through the same code path as asyncpg."""
    proj = project("data-flag", prepare=_two_revisions)
    db = proj.root / "app.db"
    proj.set_option("sqlalchemy.url", f"sqlite+aiosqlite:///{db}")
    monkeypatch.chdir(proj.root)
    env = Env(proj, sa.create_engine(f"sqlite:///{db}"), *proj.prepared)
    env.proj.alembic("upgrade", env.rev1)
    env.proj.alembic("-x", "data=true", "upgrade", "head")
    assert env.log() == ["data1", "data2"]
    assert env.recorded() == {env.rev1, env.rev2}
    env.proj.alembic("downgrade", "base")
    assert env.version() == set() and env.recorded() == set()
