"""``python -m alembic_recipes lint``: each rule caught on a real revision of a
generated project, a clean revision passing, opt-outs, squawk, the hook.

The lint renders SQL offline (env.py's ``--sql`` mode): no database is
connected, so the URLs below name servers that need not exist.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable

import pytest
from alembic_recipes.lint.render import split_statements
from alembic_recipes.lint.rules import check_statements
from alembic_recipes.lint.squawk import squawk_executable
from support.processes import recipes
from support.projects import Project

PG = "postgresql+psycopg://postgres@127.0.0.1/never_connected"
MYSQL = "mysql+pymysql://root@127.0.0.1/never_connected"

# one revision per rule, after a first revision creating the tables
RISKY = {
    "index-not-concurrent": (
        'op.create_index("ix_invoice_amount", "invoice", ["amount"])'
    ),
    "not-null-without-default": (
        'op.add_column("invoice", sa.Column("due", sa.Date, nullable=False))'
    ),
    "volatile-default": (
        'op.add_column("invoice", sa.Column("token", sa.String,'
        ' server_default=sa.text("gen_random_uuid()::text")))'
    ),
    "column-type-change": 'op.alter_column("invoice", "amount", type_=sa.BigInteger)',
    "rename-column": 'op.alter_column("invoice", "note", new_column_name="memo")',
    "rename-table": 'op.rename_table("customer", "client")',
    "drop-column": 'op.drop_column("invoice", "note")',
    "drop-table": 'op.drop_table("legacy")',
    "constraint-not-valid": (
        'op.create_foreign_key("fk_inv_cust", "invoice", "customer",'
        ' ["customer_id"], ["id"])'
    ),
    "missing-timeouts": "op.execute(\"SET lock_timeout = '0'\")",
}
CLEAN = (
    'op.create_table("payment", sa.Column("id", sa.Integer, primary_key=True),'
    ' sa.Column("invoice_id", sa.Integer, nullable=False),'
    ' sa.Column("code", sa.String(40),'
    ' server_default=sa.text("gen_random_uuid()::text")))\n'
    'op.create_index("ix_payment_invoice", "payment", ["invoice_id"])\n'
    'op.create_foreign_key("fk_pay_inv", "payment", "invoice",'
    ' ["invoice_id"], ["id"])\n'
    'op.add_column("invoice", sa.Column("paid", sa.Boolean))\n'
    "with op.get_context().autocommit_block():\n"
    '    op.create_index("ix_invoice_paid", "invoice", ["paid"],'
    " postgresql_concurrently=True)"
)
TABLES = (
    'op.create_table("customer", sa.Column("id", sa.Integer, primary_key=True))\n'
    'op.create_table("legacy", sa.Column("id", sa.Integer))\n'
    'op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True),'
    ' sa.Column("customer_id", sa.Integer), sa.Column("amount", sa.Integer),'
    ' sa.Column("note", sa.String(50)))\n'
    'op.create_index("ix_invoice_customer", "invoice", ["customer_id"])'
)


def lint(proj: Project, *args: str) -> tuple[int, list[tuple[str, str, str]], str]:
    """Run the real CLI in the project: exit code, (file, revision, rule) per
    line, and the whole output."""
    done = recipes("lint", *args, cwd=proj.root)
    found = re.findall(
        r"^([^:\n]+):(\w+|\*):([\w:-]+): .+; fix: .+$", done.stdout, re.MULTILINE
    )
    return done.returncode, found, done.stdout + done.stderr


def _history(proj: Project) -> tuple[str, dict[str, str], str]:
    first = proj.revision("tables", upgrade=TABLES)
    risky = {rule: proj.revision(rule, upgrade=code) for rule, code in RISKY.items()}
    clean = proj.revision("clean", upgrade=CLEAN)
    return first, risky, clean


@pytest.fixture
def pg_project(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> Project:
    proj = project("async-shared", url=PG, prepare=_history, key="lint-history")
    monkeypatch.chdir(proj.root)
    return proj


@pytest.mark.driver
def test_each_rule_is_caught_on_its_revision_and_clean_ones_pass(
    pg_project: Project,
) -> None:
    first, risky, clean = pg_project.prepared
    code, found, output = lint(pg_project, "--no-squawk")
    assert code == 1, output
    by_revision = {rev: rule for _, rev, rule in found}
    assert len(found) == len(RISKY), output  # one line each, nothing else
    assert by_revision == {rev: rule for rule, rev in risky.items()}
    for path, rev, _ in found:
        assert path.startswith("migrations/versions/") and path.endswith(".py")
        assert rev in path
    # new tables in the first revision, the clean one: nothing
    for ok in (first, clean):
        code, found, output = lint(pg_project, "--no-squawk", ok)
        assert (code, found) == (0, []), output
    # a range: after the first revision, up to the volatile default
    code, found, _ = lint(
        pg_project, "--no-squawk", f"{first}:{risky['volatile-default']}"
    )
    assert [rule for _, _, rule in found] == [
        "index-not-concurrent", "not-null-without-default", "volatile-default"
    ]  # fmt: skip


@pytest.mark.driver
def test_a_revision_opts_out_of_a_rule(pg_project: Project) -> None:
    _, risky, _ = pg_project.prepared
    path = pg_project.revision_file(risky["drop-column"])
    path.write_text("# lint: allow drop-column (the app stopped reading it in 4.2)\n"
                    + path.read_text())  # fmt: skip
    code, found, _ = lint(pg_project, "--no-squawk", risky["drop-column"])
    assert (code, found) == (0, [])


@pytest.mark.driver
def test_squawk_adds_its_lock_rules_and_leaves_style_off(pg_project: Project) -> None:
    if squawk_executable() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("squawk-cli is a test dependency: it must be installed in CI")
        pytest.skip("squawk-cli is not installed (pip install alembic-recipes[lint])")
    extra = pg_project.revision(
        "not null", upgrade='op.alter_column("invoice", "amount", nullable=False)'
    )
    code, found, output = lint(pg_project, extra)
    assert code == 1
    assert [rule for _, _, rule in found] == ["squawk:adding-not-nullable-field"]
    # the built-in rules' problems are reported once, under the built-in name;
    # squawk's style rules (prefer-bigint-over-int ...) stay off
    _, risky, _ = pg_project.prepared
    code, found, output = lint(pg_project, risky["index-not-concurrent"])
    assert [rule for _, _, rule in found] == ["index-not-concurrent"], output
    code, found, _ = lint(
        pg_project, "--squawk-include", "prefer-bigint-over-int", pg_project.prepared[0]
    )
    assert "squawk:prefer-bigint-over-int" in {rule for _, _, rule in found}
    code, _, output = lint(pg_project, "--squawk-include", "no-such-rule")
    assert code == 255 and "FAILED: squawk failed" in output


@pytest.mark.driver
def test_timeouts_turned_off_in_the_config(pg_project: Project) -> None:
    pg_project.set_option("lock_timeout", "0")
    code, found, _ = lint(pg_project, "--no-squawk", pg_project.prepared[2])
    assert (code, found) == (1, [("alembic.ini", "*", "missing-timeouts")])


@pytest.mark.driver
def test_rules_follow_the_dialect(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag", url=MYSQL)
    monkeypatch.chdir(proj.root)
    first = proj.revision("tables", schema_upgrades=TABLES)
    index = proj.revision("index", schema_upgrades=RISKY["index-not-concurrent"])
    drop = proj.revision("drop", schema_upgrades=RISKY["drop-column"])
    _, found, output = lint(proj)
    # MySQL builds indexes online: no index rule; dropping a column breaks code
    assert [(rev, rule) for _, rev, rule in found] == [(drop, "drop-column")], output
    assert first and index


def test_post_write_hook_warns_about_an_autogenerated_revision(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag")
    monkeypatch.chdir(proj.root)
    text = proj.ini.read_text().replace(
        "hooks = format\n",
        "hooks = format, lint\nlint.type = alembic_recipes_lint\n"
        "lint.config = %(here)s/alembic.ini\n",
    )
    proj.ini.write_text(text)
    env_py = proj.env_py.read_text().replace(
        "target_metadata = None",
        "import sqlalchemy as sa\ntarget_metadata = sa.MetaData()",
    )
    proj.env_py.write_text(env_py)
    with sqlite3.connect(proj.root / "app.db") as db:
        db.execute("CREATE TABLE legacy (id INTEGER)")
    out = proj.alembic("revision", "--autogenerate", "-m", "cleanup").stderr
    assert re.search(r"migrations/versions/\w+_cleanup\.py:\w+:drop-table:", out), out


def test_statements_are_split_outside_quotes_and_dollar_bodies() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "-- a comment; with a semicolon\n"
        "INSERT INTO t VALUES ('a;b', \"c;d\");\n\nDROP TABLE x"
    )
    assert split_statements(sql) == [
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        "INSERT INTO t VALUES ('a;b', \"c;d\")",
        "DROP TABLE x",
    ]
    # a table created in the same revision is no live table
    new = ["CREATE TABLE x (id int)", "CREATE INDEX ix ON x (id)", "DROP TABLE x"]
    assert list(check_statements(new, "postgresql")) == []


def test_default_range_is_what_the_database_has_not_run(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag")  # SQLite: app.db
    monkeypatch.chdir(proj.root)
    first = proj.revision("tables", schema_upgrades=TABLES)
    drop = proj.revision("drop", schema_upgrades=RISKY["drop-table"])
    _, found, output = lint(proj)  # app.db does not exist yet: all of them
    assert (
        "lint: revisions base:head (the SQLite database does not exist yet)" in output
    )
    assert not (proj.root / "app.db").exists()  # linting created nothing
    assert [rev for _, rev, _ in found] == [drop]
    proj.alembic("upgrade", first)
    _, found, output = lint(proj)  # what is not applied yet: the drop
    assert f"lint: revisions {first}:head (the database is at {first})" in output
    assert [rev for _, rev, _ in found] == [drop]
    proj.alembic("upgrade", "head")
    code, found, output = lint(proj)  # everything applied: nothing to lint
    assert (code, found) == (0, [])
