"""Unit tests of the helper functions (on top of the CLI tests, not instead)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.util import CommandError
from alembic_recipes import connect_and_run, is_async_url
from alembic_recipes.__main__ import _split_options, main
from alembic_recipes.configuration.options import (
    get_bool_option,
    parse_bool,
    x_arguments,
)
from alembic_recipes.data import has_body
from alembic_recipes.database.connections import run_coroutine
from alembic_recipes.templates import TEMPLATES, template_path
from sqlalchemy.ext.asyncio import create_async_engine


def _config(x: list[str] | None = None, **main_options: str) -> Config:
    cfg = Config(cmd_opts=argparse.Namespace(x=x) if x is not None else None)
    for key, value in main_options.items():
        cfg.set_main_option(key, value)
    return cfg


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        *[("true", True), ("YES", True), (" on ", True), ("1", True), (True, True)],
        *[
            ("false", False),
            ("No", False),
            ("OFF", False),
            ("0", False),
            (False, False),
        ],
    ],
)
def test_parse_bool(word: str | bool, expected: bool) -> None:
    assert parse_bool(word, source="-x data") is expected


@pytest.mark.parametrize("word", ["", "maybe", "2", "truee", "y"])
def test_parse_bool_rejects(word: str) -> None:
    with pytest.raises(CommandError, match=f"invalid value {word!r} for -x data"):
        parse_bool(word, source="-x data")


def test_option_precedence_x_then_attributes_then_ini() -> None:
    cfg = _config(["data=false", "other=1", "flag"], data_migrations="true")
    cfg.attributes["data"] = True
    assert x_arguments(cfg) == {"data": "false", "other": "1", "flag": ""}
    assert get_bool_option(cfg, "data", ini_key="data_migrations") is False
    cfg = _config([], data_migrations="false")
    cfg.attributes["data"] = True
    assert get_bool_option(cfg, "data", ini_key="data_migrations") is True
    assert get_bool_option(_config(None, data_migrations="on"), "data",
                           ini_key="data_migrations") is True  # fmt: skip
    assert get_bool_option(_config(None), "data", ini_key="data_migrations") is False


def test_attribute_of_wrong_type() -> None:
    cfg = _config(None)
    cfg.attributes["data"] = 3
    with pytest.raises(CommandError, match=r"config\.attributes\['data'\]"):
        get_bool_option(cfg, "data")


def test_has_body() -> None:
    def doc_only() -> None:
        """Nothing."""

    def pass_only() -> None:
        pass

    def work() -> None:
        print("x")

    assert not has_body(None)
    assert not has_body(doc_only)
    assert not has_body(pass_only)
    assert has_body(work)


def test_is_async_url() -> None:
    assert is_async_url("sqlite+aiosqlite:///x.db")
    assert is_async_url("postgresql+asyncpg://u@h/db")
    assert not is_async_url("sqlite:///x.db")
    assert not is_async_url("postgresql+psycopg://u@h/db")


def test_connect_and_run_needs_a_url() -> None:
    with pytest.raises(CommandError, match=r"no sqlalchemy\.url configured"):
        connect_and_run(_config(None), lambda conn: None)


def test_sqlite_engine_from_ini_is_transactional(tmp_path: Path) -> None:
    cfg = _config(None, **{"sqlalchemy.url": f"sqlite:///{tmp_path / 'x.db'}"})

    def ddl_then_rollback(conn: sa.Connection) -> None:
        with conn.begin() as tx:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER)")
            tx.rollback()

    connect_and_run(cfg, ddl_then_rollback)
    check = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with check.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []


async def _answer() -> int:
    return 42


def test_run_coroutine_with_and_without_a_running_loop() -> None:
    import asyncio

    assert run_coroutine(_answer) == 42

    async def inside() -> int:
        return run_coroutine(_answer)

    assert asyncio.run(inside()) == 42


def test_run_with_async_engine_outside_a_loop(tmp_path: Path) -> None:
    from alembic_recipes import run_with_connection

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'y.db'}")
    assert run_with_connection(engine, lambda c: c.scalar(sa.text("SELECT 7"))) == 7


def test_templates_resolve() -> None:
    for name in TEMPLATES:
        assert (template_path(name) / "env.py").is_file()
    with pytest.raises(LookupError, match="unknown template 'nope': expected one of"):
        template_path("nope")


def test_main_usage_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: python -m alembic_recipes list" in capsys.readouterr().err
    assert main(["init", "nope", "dir"]) == 2
    assert "unknown template 'nope'" in capsys.readouterr().err
    assert main(["render-tables", "--schema", "x"]) == 2  # no URL: usage, no trace
    err = capsys.readouterr().err
    assert "the following arguments are required: URL" in err
    assert "Traceback" not in err
    assert _split_options(["-c", "x.ini", "--package", "--name=foo"]) == (
        ["-c", "x.ini", "--name=foo"],
        ["--package"],
    )


def test_table_ops_ordered_for_every_input_order() -> None:
    """Alembic lists added/removed tables in hash order; every permutation must
    come out executable: no DROP INDEX of a dropped table, dependents dropped
    first, referenced tables created first, indexes after their table."""
    import itertools

    from alembic.operations import ops
    from alembic_recipes.autogenerate.recipes import skip_index_drops_of_dropped_tables

    metadata = sa.MetaData()
    a = sa.Table("a", metadata, sa.Column("id", sa.Integer, primary_key=True))
    b = sa.Table(
        "b",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a_id", sa.Integer, sa.ForeignKey("a.id")),
    )
    index = sa.Index("ix_b_a_id", b.c.a_id)
    drops = [
        ops.ModifyTableOps("b", [ops.DropIndexOp.from_index(index)]),
        ops.DropTableOp.from_table(b),
        ops.DropTableOp.from_table(a),
    ]
    creates = [
        ops.CreateTableOp.from_table(a),
        ops.CreateTableOp.from_table(b),
        ops.ModifyTableOps("b", [ops.CreateIndexOp.from_index(index)]),
    ]
    for drop_order, create_order in zip(
        itertools.permutations(drops), itertools.permutations(creates), strict=True
    ):
        script = ops.MigrationScript(
            "rev",
            ops.UpgradeOps(list(drop_order)),
            ops.DowngradeOps(list(create_order)),
        )
        skip_index_drops_of_dropped_tables(None, None, [script])  # type: ignore[arg-type]
        up = [(type(o).__name__, o.table_name) for o in script.upgrade_ops.ops]
        assert up == [("DropTableOp", "b"), ("DropTableOp", "a")]
        down = [(type(o).__name__, o.table_name) for o in script.downgrade_ops.ops]
        assert down == [
            ("CreateTableOp", "a"),
            ("CreateTableOp", "b"),
            ("ModifyTableOps", "b"),
        ]


def test_names_before_0_2_still_work_and_warn() -> None:
    """The awaitable commands without ``_async``, and helpers that left the
    public API, are still there until 0.3, each with a DeprecationWarning
    that names what to use."""
    import alembic_recipes
    from alembic_recipes.configuration import options
    from alembic_recipes.database import connections
    from alembic_recipes.runtime import commands

    for old, new in [
        ("upgrade", commands.upgrade_async),
        ("downgrade", commands.downgrade_async),
        ("stamp", commands.stamp_async),
        ("current", commands.current_async),
        ("run_command", commands.run_command_async),
        ("current_heads", commands.current_heads),
        ("parse_bool", options.parse_bool),
        ("run_coroutine", connections.run_coroutine),
    ]:
        with pytest.warns(DeprecationWarning, match=f"alembic_recipes.{old} is"):
            assert getattr(alembic_recipes, old) is new
        assert old not in alembic_recipes.__all__
    with pytest.raises(AttributeError):
        alembic_recipes.no_such_name  # noqa: B018


MOVED_CHECK = """
import importlib, json, warnings
from alembic_recipes.moved import ALSO, MOVED
found = {}
for old, new in MOVED.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    targets = [importlib.import_module(m) for m in (new, *ALSO.get(old, ()))]
    names = [n for target in targets for n in getattr(target, "__all__", [])]
    found[old] = {
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "same": bool(names) and all(
            getattr(module, n) is getattr(next(t for t in targets if hasattr(t, n)), n)
            for n in names
        ),
        "all": list(module.__all__) == list(dict.fromkeys(names)),
    }
exec("from alembic_recipes.formatting import *")
found["star"] = "ruff_format" in dir()
print(json.dumps(found))
"""


def test_module_paths_before_0_2_still_work_and_warn() -> None:
    """``import alembic_recipes.formatting`` (in revision templates written
    by 0.1) and every other old module path still import, once each with a
    DeprecationWarning naming the new path, and give the same objects -- in a
    fresh interpreter, where nothing is imported yet."""
    import json
    import subprocess
    import sys

    from alembic_recipes.moved import MOVED

    done = subprocess.run(
        [sys.executable, "-c", MOVED_CHECK], capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    assert found.pop("star") is True
    assert set(found) == set(MOVED) and len(MOVED) == 47
    for old, seen in found.items():
        new = MOVED[old]
        assert seen["warnings"] == [
            f"DeprecationWarning: {old} is deprecated and goes in 0.3: use {new}"
        ], old
        assert seen["same"] and seen["all"], old
    for new in MOVED.values():
        module = __import__(new, fromlist=["_"])
        assert module.__name__ == new
    # tenants.selection is a package now: its old names forward, and warn
    from alembic_recipes.tenants import selection
    from alembic_recipes.tenants.selection.selection import Selection

    with pytest.warns(DeprecationWarning, match="selection.selection.Selection"):
        assert selection.Selection is Selection
    with pytest.raises(AttributeError):
        selection.no_such_name  # noqa: B018
