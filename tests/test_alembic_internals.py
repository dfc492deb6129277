"""Each use of Alembic's private API (``alembic_recipes.alembic_internals``),
checked in-process against the installed Alembic: nox runs this module on the
oldest supported Alembic and on the newest."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command, util
from alembic.autogenerate import produce_migrations
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic_recipes import alembic_internals as internals

# env.py of the test project: records what the internals see, through the
# Config object the test holds (config.attributes["seen"]).
ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

from alembic_recipes import alembic_internals as internals

config = context.config
seen = config.attributes.setdefault("seen", {})
seen["command"] = internals.running_command()
seen["imported_at_load"] = (config.attributes["marker"]).exists()
steps_seen = seen.setdefault("first_steps", [])
internals.before_first_steps(
    internals.environment(),
    lambda: steps_seen.append(config.attributes["marker"].exists()),
)
seen["plain"] = internals.current_is_plain()  # read through that wrapper


def shared_steps(original):
    def steps(heads, migration_context):
        found = list(original(heads, migration_context))
        for step in found:
            internals.run_step_instead(
                step, ("upgrade_shared", "downgrade_shared"), lambda: None
            )
        return found

    return steps


def migrate(connection):
    metadata = config.attributes.get("md")
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
    take = config.attributes.get("take")
    if take is not None:
        seen["ops"] = internals.autogenerate_ops(context.get_context(), take=take)


def run(connection):
    if config.attributes.get("ours"):  # our transaction, begun before configure()
        with internals.transaction_alembic_may_end(connection):
            migrate(connection)
    elif config.attributes.get("shared"):  # before configure(), which takes fn
        with internals.replace_step_function(shared_steps):
            seen["command_while_replaced"] = internals.running_command()
            migrate(connection)
    else:
        migrate(connection)


url = config.get_main_option("sqlalchemy.url")
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    run(connection)
    connection.commit()
engine.dispose()
"""

REVISION = '''
"""first"""
from pathlib import Path

from alembic import op
import sqlalchemy as sa

revision = "r1"
down_revision = None
branch_labels = None
depends_on = None

Path(__file__).with_suffix(".imported").touch()


def upgrade():
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("t")


def upgrade_shared():
    op.create_table("shared_t", sa.Column("id", sa.Integer, primary_key=True))


def downgrade_shared():
    op.drop_table("shared_t")
'''


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A hand-made project: the env.py above, one revision, a SQLite file."""
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY)
    (scripts / "script.py.mako").write_text("")
    (scripts / "versions" / "r1_first.py").write_text(textwrap.dedent(REVISION))
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'app.db'}")
    cfg.attributes["marker"] = scripts / "versions" / "r1_first.imported"
    return cfg


def _tables(cfg: Config) -> set[str]:
    engine = sa.create_engine(str(cfg.get_main_option("sqlalchemy.url")))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "run, expected",
    [
        (lambda cfg: command.upgrade(cfg, "head"), "upgrade"),
        (lambda cfg: command.downgrade(cfg, "base"), "downgrade"),
        (lambda cfg: command.stamp(cfg, "head"), "stamp"),
        (lambda cfg: command.current(cfg), "current"),
        (lambda cfg: command.check(cfg), "check"),
        (lambda cfg: command.history(cfg, indicate_current=True), "history"),
    ],
    ids=["upgrade", "downgrade", "stamp", "current", "check", "history"],
)
def test_running_command_names_each_command(
    config: Config, run: Callable[[Config], None], expected: str
) -> None:
    if expected in ("downgrade", "check"):
        command.upgrade(config, "head")
        config.attributes["seen"] = {}
    config.attributes["md"] = _metadata_like_the_revision()
    run(config)
    assert config.attributes["seen"]["command"] == expected


def test_running_command_outside_a_command_is_empty() -> None:
    assert internals.environment() is None
    assert internals.running_command() == ""


def test_running_command_reads_steps_wrapped_by_test_tools(config: Config) -> None:
    """pytest-alembic runs env.py with CommandExecutor.upgrade.<locals>.upgrade."""

    class CommandExecutor:
        def upgrade(self) -> Callable[..., list[object]]:
            def upgrade(rev: object, context: object) -> list[object]:
                return []

            return upgrade

    script = ScriptDirectory.from_config(config)
    with EnvironmentContext(config, script, fn=CommandExecutor().upgrade()) as env:
        assert internals.environment() is env
        assert internals.running_command() == "upgrade"
    assert internals.running_command() == ""


def test_revision_files_load_when_the_command_asks_for_its_steps(
    config: Config,
) -> None:
    command.upgrade(config, "head")
    seen = config.attributes["seen"]
    assert seen["imported_at_load"] is False  # env.py loaded no revision file
    assert seen["first_steps"] == [True]  # once, with the revisions loaded
    assert "t" in _tables(config)


def test_replaced_step_function_runs_other_parts_and_keeps_the_command(
    config: Config,
) -> None:
    config.attributes["shared"] = True
    command.upgrade(config, "head")
    assert config.attributes["seen"]["command_while_replaced"] == "upgrade"
    assert {"shared_t", "alembic_version"} <= _tables(config)
    assert "t" not in _tables(config)
    command.downgrade(config, "base")
    assert "shared_t" not in _tables(config)


AUTOCOMMIT_REVISION = '''
"""second"""
from alembic import op
import sqlalchemy as sa

revision = "r2"
down_revision = "r1"


def upgrade():
    with op.get_context().autocommit_block():
        op.execute("CREATE TABLE in_block (id INTEGER)")
    op.create_table("after_block", sa.Column("id", sa.Integer))
'''


def test_alembic_may_end_our_transaction_in_an_autocommit_block(
    config: Config,
) -> None:
    scripts = Path(str(config.get_main_option("script_location")))
    (scripts / "versions" / "r2_second.py").write_text(AUTOCOMMIT_REVISION)
    config.attributes["ours"] = True
    command.upgrade(config, "head")
    assert {"t", "in_block", "after_block"} <= _tables(config)
    engine = sa.create_engine(str(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as conn:
        assert list(
            conn.scalars(sa.text("SELECT version_num FROM alembic_version"))
        ) == ["r2"]
    engine.dispose()


def test_environment_state_lives_with_its_environment(config: Config) -> None:
    script = ScriptDirectory.from_config(config)
    with EnvironmentContext(config, script) as env:
        internals.environment_state(env)["x"] = 1
        assert internals.environment_state(env) == {"x": 1}
    other = EnvironmentContext(config, script)
    assert internals.environment_state(other) == {}


def test_upgrade_steps_are_the_upgrade_commands(config: Config) -> None:
    script = ScriptDirectory.from_config(config)
    steps = list(internals.upgrade_steps(script, "head", ()))
    assert [step.revision.revision for step in steps] == ["r1"]
    assert all(step.is_upgrade for step in steps)


def test_version_table_of_a_migration_context() -> None:
    context = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "version_table_schema": "acme"},
    )
    table = internals.version_table(context)
    assert (table.name, table.schema) == (internals.VERSION_TABLE, "acme")
    assert "version_num" in table.c


def test_reflected_table_of_an_autogenerated_drop(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY,"
            " parent_id INTEGER REFERENCES parent (id))"
        )
    with engine.connect() as conn:
        script = produce_migrations(MigrationContext.configure(conn), sa.MetaData())
    engine.dispose()
    assert script.upgrade_ops is not None
    drops = {
        op.table_name: op
        for op in script.upgrade_ops.ops
        if isinstance(op, ops.DropTableOp)
    }
    reverse = internals.reflected_table(drops["child"])
    assert isinstance(reverse, ops.CreateTableOp)
    columns = {getattr(item, "name", None) for item in reverse.columns}
    assert {"id", "parent_id"} <= columns
    fks: list[Any] = [
        fk.target_fullname
        for item in reverse.columns
        for fk in getattr(item, "elements", ())
    ]
    assert fks == ["parent.id"]
    assert internals.reflected_table(ops.DropTableOp("by_hand")) is None


def test_column_copy_is_a_new_equal_column() -> None:
    column = sa.Column("id", sa.Integer, primary_key=True, comment="key")
    copy = internals.column_copy(column)
    assert copy is not column
    assert (copy.name, copy.primary_key, copy.comment) == ("id", True, "key")
    assert isinstance(copy.type, sa.Integer)


def _metadata_like_the_revision() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def test_autogenerate_ops_are_what_check_found_and_can_be_taken(
    config: Config,
) -> None:
    command.upgrade(config, "head")
    md = sa.MetaData()
    sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("extra", md, sa.Column("id", sa.Integer, primary_key=True))
    config.attributes.update(md=md, take=False)
    with pytest.raises(util.AutogenerateDiffsDetected):  # left for Alembic
        command.check(config)
    found = config.attributes["seen"]["ops"]
    assert [type(o).__name__ for o in found.ops] == ["CreateTableOp"]
    config.attributes["take"] = True
    command.check(config)  # taken: Alembic's own verdict sees nothing
    assert [o.table_name for o in config.attributes["seen"]["ops"].ops] == ["extra"]
    command.upgrade(config, "head")  # not autogenerate: nothing to find
    assert config.attributes["seen"]["ops"] is None


def test_current_is_plain_without_verbose_or_check_heads(config: Config) -> None:
    seen = config.attributes.setdefault("seen", {})
    command.current(config)
    assert seen["plain"] is True
    command.current(config, verbose=True)
    assert seen["plain"] is False
    if "check_heads" in command.current.__code__.co_varnames:  # Alembic 1.15+
        command.upgrade(config, "head")
        command.current(config, check_heads=True)  # type: ignore[call-arg]
        assert seen["plain"] is False
    command.upgrade(config, "head")  # not current: no such closure
    assert seen["plain"] is False


def test_before_each_step_names_the_revision_about_to_run(config: Config) -> None:
    script = ScriptDirectory.from_config(config)
    steps = list(internals.upgrade_steps(script, "head", ()))
    for step in steps:
        step.migration_fn = lambda: "ran"  # the revision's upgrade(), stood in for
    entered: list[str] = []
    internals.before_each_step(steps, entered.append)
    assert [step.migration_fn() for step in steps] == ["ran"]
    assert entered == ["r1"]


@pytest.mark.pyproject  # also on Alembic 1.16.0, the first that reads it
@pytest.mark.skipif(
    not hasattr(Config, "toml_file_name"), reason="pyproject.toml needs Alembic 1.16"
)
def test_toml_beside_ini(tmp_path: Path) -> None:
    """A config made from the ini alone reads ``[tool.alembic]`` beside it."""
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    config = Config(str(ini))
    assert config.toml_alembic_config == {}  # memoized without a file
    internals.toml_beside_ini(config)  # nothing there yet
    assert config.toml_file_name is None
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\ndatabases = "a, b"\n')
    internals.toml_beside_ini(config)
    assert config.get_alembic_option("databases") == "a, b"
    given = Config(str(ini), toml_file=str(tmp_path / "other.toml"))
    internals.toml_beside_ini(given)  # one the caller chose stays
    assert given.toml_file_name == str(tmp_path / "other.toml")
