"""An ordinary day with every template, through Alembic's command line:
hand-written revisions, failures that keep their cause, no password in any
output, options checked before any connection, output that says only what
is true.  The tests marked ``console_script`` start the real ``alembic``
script (one end-to-end path per template and per kind of failure); the rest
run it in-process."""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic_recipes import DatabaseSettings, DataSettings, Settings, TenantSettings
from alembic_recipes.configuration.options import InvalidOption
from support.processes import BIN, Result
from support.projects import (
    Project,
    add_database,
    assert_ruff_clean,
    set_body,
    use_models,
)
from support.servers import ServerDB, tables, throwaway_on, versions

TEMPLATES = ["async-shared", "data-flag", "multidb-mixed", "multitenant"]
SETTINGS: dict[str, type[Settings]] = {
    "async-shared": Settings,
    "data-flag": DataSettings,
    "multidb-mixed": DatabaseSettings,
    "multitenant": TenantSettings,
}
# the function a hand-written schema change goes into, per template
UPGRADE_FN = {
    "async-shared": "upgrade",
    "data-flag": "schema_upgrades",
    "multidb-mixed": "upgrade_main",
    "multitenant": "upgrade",
}
TENANT = {"multitenant": ["-x", "tenant=acme"]}
ACCOUNT = 'op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))'
DEAD_PG = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nowhere"


MODELS = """import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table("account", metadata, sa.Column("id", sa.Integer, primary_key=True))
"""


def use_metadata(proj: Project) -> None:
    """env.py's target_metadata: a models.py MetaData (one table, account)."""
    (proj.root / "models.py").write_text(MODELS)
    use_models(proj)


def schema_project(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> Project:
    """A multitenant project with the schema strategy on *pg* (psycopg)."""
    proj = project("multitenant", url=pg.driver_url("psycopg"))
    proj.set_option("tenant_strategy", "schema")
    monkeypatch.chdir(proj.root)
    return proj


def database_of(proj: Project) -> str:
    """The SQLite URL the template's embedded default migrates."""
    name = {
        "multidb-mixed": "main.db",
        "multitenant": "tenants/acme.db",
    }.get(proj.template, "app.db")
    return f"sqlite:///{proj.root}/{name}"


# -- 1. revisions that just work ---------------------------------------------------
@pytest.mark.console_script  # the ordinary day, end to end per template
@pytest.mark.parametrize("template", TEMPLATES)
def test_hand_written_revision_runs_as_written(
    template: str, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alembic revision -m ...`, then op.create_table(..., sa.Column(...)) as
    every Alembic tutorial writes it: no NameError, the table exists."""
    proj = project(template)
    monkeypatch.chdir(proj.root)
    out = proj.alembic("revision", "-m", "create account").output
    path = Path(re.findall(r"Generating (\S+\.py)", out)[0])
    text = path.read_text()
    assert re.search(r"^import sqlalchemy as sa\b", text, re.M)
    assert re.search(r"^from alembic import op\b", text, re.M)
    assert_ruff_clean(path)
    path.write_text(set_body(text, UPGRADE_FN[template], ACCOUNT))
    proj.alembic(*TENANT.get(template, []), "upgrade", "head")
    assert "account" in tables(database_of(proj))


# -- 2. a failure keeps its cause ---------------------------------------------------
def _failing(proj: Project, fn: str = "upgrade") -> str:
    return proj.revision("boom", **{fn: "undefined_helper()\n"})


@pytest.mark.console_script  # the traceback as the interpreter prints it
def test_one_tenant_failure_is_the_original_exception(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    rev = _failing(proj)
    result = proj.alembic("-x", "tenant=acme", "upgrade", "head", ok=False)
    assert result.code == 1  # a Python traceback, like stock `generic`
    assert "NameError: name 'undefined_helper' is not defined" in result.stderr
    assert f"{rev}_boom.py" in result.stderr and ", line " in result.stderr
    assert "FAILED" not in result.output and "tenant(s)" not in result.output
    assert not Path(proj.root, "tenants", "acme.db").exists()


@pytest.mark.postgresql
def test_fleet_logs_each_failure_once_with_its_sql(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = schema_project(project, pg, monkeypatch)
    proj.revision("bad sql", upgrade='op.execute("SELECT * FROM no_such_table")')
    result = proj.alembic(
        "-x", "tenant=acme,globex", "-x", "continue=true", "upgrade", "head",
        ok=False,
    )  # fmt: skip
    err = result.stderr
    assert result.code == 255
    for tenant in ("acme", "globex"):
        assert f"] {tenant}: FAILED after" in err
    # each tenant's error in full, once: traceback (with its cause), the SQL
    assert err.count("Traceback (most recent call last)") == 2 * 2  # + cause
    assert err.count("[SQL: SELECT * FROM no_such_table]") == 2
    assert err.count("sqlalchemy.exc.ProgrammingError: (psycopg.errors.Undefined") == 2
    assert "Tenants: 2 total: 2 failed" in err
    assert "FAILED: 2 of 2 tenants failed: acme, globex" in result.stdout
    with pg.engine().connect() as conn:
        schemas = set(conn.scalars(sa.text("SELECT nspname FROM pg_namespace")))
    # CREATE SCHEMA ran inside each tenant's transaction: rolled back with it
    assert not {"acme", "globex"} & schemas


def test_fleet_error_is_chained_to_the_first_failure(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    _failing(proj)
    cfg = Config(str(proj.ini), cmd_opts=None)
    cfg.attributes.update(tenant="all", configure_logger=False)
    cfg.attributes["continue"] = True
    with pytest.raises(Exception, match="2 of 2 tenants failed: acme, globex") as info:
        command.upgrade(cfg, "head")
    assert isinstance(info.value.__cause__, NameError)


HOOK_ERROR = '''
class StopHere(Exception):
    """Raised by a caller's process_revision_directives (test tools do this)."""


def stop_here(context, revision, directives):
    raise StopHere("stop after the comparison")
'''


@pytest.mark.parametrize("template", TEMPLATES)
def test_callers_hook_exception_passes_through(
    template: str, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project(template)
    monkeypatch.chdir(proj.root)
    monkeypatch.syspath_prepend(str(proj.root))
    proj.alembic(*TENANT.get(template, []), "upgrade", "head")
    use_metadata(proj)
    (proj.root / "hooks_for_test.py").write_text(HOOK_ERROR)
    text = proj.env_py.read_text()
    new = re.sub(
        r"\*\*autogenerate_hooks\(settings(, runs=(?:database|tenant).runs)?\)",
        r"**autogenerate_hooks(settings\1, process_revision_directives=stop_here)",
        text,
    )
    assert new != text
    proj.env_py.write_text("from hooks_for_test import stop_here\n" + new)
    import hooks_for_test

    cfg = Config(str(proj.ini))
    cfg.attributes["configure_logger"] = False
    if template == "multitenant":
        cfg.attributes["tenant"] = "acme"
    with pytest.raises(hooks_for_test.StopHere, match="stop after the comparison"):
        command.revision(cfg, "x", autogenerate=True)
    for module in ("hooks_for_test", "models"):
        sys.modules.pop(module, None)


def test_multidb_failure_printed_once(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multidb-mixed")
    monkeypatch.chdir(proj.root)
    proj.revision("bad", upgrade_analytics='op.execute("SELECT * FROM nope")')
    result = proj.alembic("upgrade", "head", ok=False)
    assert result.output.count("[SQL: SELECT * FROM nope]") == 1
    assert result.output.count("sqlalchemy.exc.OperationalError") == 1
    assert "Rolled back every database (main, analytics)" in result.stderr


# -- 3. no password in any output ----------------------------------------------------
SECRET = "s3cret"


def _with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{SECRET}@", 1)


def _assert_no_secret(*results: object) -> None:
    for result in results:
        text = getattr(result, "output", str(result))
        assert SECRET not in text, text


@pytest.mark.postgresql
@pytest.mark.parametrize("template", ["async-shared", "data-flag"])
def test_no_password_single_database(
    template: str,
    project: Callable[..., Project],
    pg: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = "asyncpg" if template == "async-shared" else "psycopg"
    proj = project(template, url=_with_password(pg.driver_url(driver)))
    monkeypatch.chdir(proj.root)
    rev = proj.revision("t", **{UPGRADE_FN[template]: ACCOUNT})
    results = [
        proj.alembic("upgrade", "head", "--sql"),
        proj.alembic("upgrade", "head"),
        proj.alembic("current"),
        *([proj.alembic("-x", "data=true", "upgrade", "head")]
          if template == "data-flag" else []),
        proj.alembic("downgrade", "base"),
    ]  # fmt: skip
    assert f"{rev}" in results[0].stdout
    _failing(proj, UPGRADE_FN[template])
    results.append(proj.alembic("upgrade", "head", ok=False))
    proj.set_option("sqlalchemy.url", DEAD_PG.replace("+psycopg", f"+{driver}"))
    dead = proj.alembic("upgrade", "head", ok=False)
    assert "FAILED: cannot connect to the database" in dead.stdout
    assert "postgres:***@127.0.0.1:1/nowhere" in dead.stdout
    _assert_no_secret(*results, dead)


@pytest.mark.console_script  # what the process prints, tracebacks too
@pytest.mark.postgresql
def test_no_password_multitenant(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant", url=_with_password(pg.driver_url("psycopg")))
    proj.set_option("tenant_strategy", "schema")
    monkeypatch.chdir(proj.root)
    proj.revision("t", upgrade=ACCOUNT)
    results = [
        proj.alembic("-x", "tenant=acme,globex", "upgrade", "head", "--sql"),
        proj.alembic("-x", "tenant=all", "upgrade", "head"),
        proj.alembic("-x", "tenant=all", "current"),
    ]
    # database strategy: a database per tenant on the server
    template = _with_password(pg.driver_url("psycopg")) + "_{tenant}"
    proj.set_option("tenant_strategy", "database")
    proj.set_option("sqlalchemy.url", template)
    offline = proj.alembic("-x", "tenant=acme,globex", "upgrade", "head", "--sql")
    assert "-- Tenant acme: database postgresql+psycopg://postgres:***@" in (
        offline.stdout
    )
    results += [offline, proj.alembic("-x", "tenant=all", "current")]
    # setup errors name the URL without its password
    proj.set_option("tenant_strategy", "schema")
    results.append(proj.alembic("-x", "tenant=acme", "upgrade", "head", ok=False))
    proj.set_option("sqlalchemy.url", "mysql+pymysql://root:s3cret@127.0.0.1/test")
    results.append(proj.alembic("-x", "tenant=acme", "upgrade", "head", ok=False))
    proj.set_option("tenant_strategy", "database")
    results.append(proj.alembic("-x", "tenant=acme", "upgrade", "head", ok=False))
    assert "mysql+pymysql://root:***@127.0.0.1/test" in results[-1].stdout
    proj.set_option("sqlalchemy.url", DEAD_PG + "_{tenant}")
    results.append(proj.alembic("-x", "tenant=acme", "upgrade", "head", ok=False))
    assert (
        "FAILED: cannot connect to the server postgresql+psycopg://postgres:***@"
        in (results[-1].stdout)
    )
    _assert_no_secret(*results)


@pytest.mark.postgresql
def test_no_password_multidb(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multidb-mixed")
    url = _with_password(pg.driver_url("asyncpg"))
    proj.set_option("sqlalchemy.url", url, section="analytics")
    monkeypatch.chdir(proj.root)
    proj.revision("t", upgrade_main=ACCOUNT, upgrade_analytics=ACCOUNT)
    results = [
        proj.alembic("upgrade", "head", "--sql"),
        proj.alembic("upgrade", "head"),
        proj.alembic("current"),
    ]
    proj.set_option("sqlalchemy.url", DEAD_PG, section="analytics")
    dead = proj.alembic("upgrade", "head", ok=False)
    assert (
        "FAILED: cannot connect to database 'analytics'"
        " (postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere)"
    ) in dead.stdout
    assert "Traceback" not in dead.output
    _assert_no_secret(*results, dead)


# -- 4. compiled mode from base after a downgrade -----------------------------------
@pytest.mark.postgresql
def test_compiled_upgrade_after_downgrade_to_base(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = schema_project(project, pg, monkeypatch)
    rev = proj.revision("t", upgrade=ACCOUNT, downgrade='op.drop_table("account")')
    proj.alembic("-x", "tenant=zeta", "-x", "create=true", "upgrade", "head")
    proj.alembic("-x", "tenant=zeta", "downgrade", "base")
    proj.alembic("-x", "tenant=zeta,acme", "-x", "compiled=true", "upgrade", "head")
    engine = pg.engine()
    with engine.connect() as conn:
        for schema in ("zeta", "acme"):
            assert sa.inspect(conn).has_table("account", schema=schema)
            q = f"SELECT version_num FROM {schema}.alembic_version"
            assert list(conn.scalars(sa.text(q))) == [rev]


# -- 5. downgrades never run data upgrades --------------------------------------------
def test_data_downgrade_runs_no_catch_up(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("data-flag")
    monkeypatch.chdir(proj.root)
    proj.revision(
        "seed",
        schema_upgrades='op.create_table("seed", sa.Column("name", sa.String(9)))',
        data_upgrades="op.execute(\"INSERT INTO seed VALUES ('one')\")",
    )
    proj.revision(
        "two",
        schema_upgrades='op.create_table("t2", sa.Column("x", sa.Integer))',
        schema_downgrades='op.drop_table("t2")',
    )
    proj.alembic("upgrade", "head")  # data off: seed's data part pending
    out = proj.alembic("-x", "data=true", "downgrade", "-1").stderr
    assert "catch-up" not in out
    engine = sa.create_engine(database_of(proj))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM seed")) == 0
        assert not sa.inspect(conn).has_table("t2")
    out = proj.alembic("-x", "data=true", "upgrade", "head").stderr
    assert "Running data upgrade (catch-up)" in out
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM seed")) == 1


# -- 6. the generated multitenant project works out of the box -----------------------
def test_multitenant_default_project_works_for_listed_tenants(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    rev = proj.revision("t", upgrade=ACCOUNT)
    proj.alembic("-x", "tenant=acme", "upgrade", "head")
    assert versions(database_of(proj)) == [rev]
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    assert versions(f"sqlite:///{proj.root}/tenants/globex.db") == [rev]
    # a typed name nobody listed still needs create
    result = proj.alembic("-x", "tenant=newco", "upgrade", "head", ok=False)
    assert "tenant 'newco': database does not exist" in result.stdout
    assert not (proj.root / "tenants" / "newco.db").exists()
    made = proj.alembic("-x", "tenant=newco", "-x", "create=true", "upgrade", "head")
    assert versions(f"sqlite:///{proj.root}/tenants/newco.db") == [rev]
    assert (  # outside the fleet's list: said, with the line to add
        "tenant 'newco' is created but is not one of this fleet's tenants: -x"
        " tenant=all will not migrate it; add it to tenants: tenants = acme,"
        " globex, newco"
    ) in made.stderr
    # create_tenants = false: not even listed ones
    proj.set_option("tenants", "acme, globex, initech")
    proj.set_option("create_tenants", "false")
    proj.alembic("-x", "tenant=initech", "upgrade", "head", ok=False)
    assert not (proj.root / "tenants" / "initech.db").exists()
    bad = proj.alembic("-x", "create=perhaps", "-x", "tenant=acme", "current", ok=False)
    assert "invalid value 'perhaps' for -x create" in bad.stdout and "'known'" in (
        bad.stdout
    )


# -- 7. a database created by a failed run is removed ----------------------------------
def test_failed_first_migration_removes_created_sqlite_file(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    _failing(proj)
    proj.alembic("-x", "tenant=newco", "-x", "create=true", "upgrade", "head", ok=False)
    assert not (proj.root / "tenants").exists()  # file and the directory made for it
    again = proj.alembic("-x", "tenant=newco", "upgrade", "head", ok=False)
    assert "tenant 'newco': database does not exist" in again.stdout


@pytest.mark.postgresql
def test_failed_first_migration_drops_created_database(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = pg.url.database
    proj = project("multitenant", url=pg.driver_url("psycopg") + "_{tenant}")
    monkeypatch.chdir(proj.root)
    _failing(proj)
    proj.alembic("-x", "tenant=newco", "-x", "create=true", "upgrade", "head", ok=False)
    with pg.engine().connect() as conn:
        names = set(conn.scalars(sa.text("SELECT datname FROM pg_database")))
    assert f"{base}_newco" not in names


# -- 8. {tenant} only in the database part ------------------------------------------
@pytest.mark.driver
def test_tenant_placeholder_in_project_path_is_left_alone(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant", name="{tenant}")
    monkeypatch.chdir(proj.root)
    assert proj.root.name == "{tenant}"
    proj.alembic("-x", "tenant=acme", "upgrade", "head")
    assert (proj.root / "tenants" / "acme.db").is_file()
    assert not (proj.root.parent / "acme").exists()
    proj.set_option("sqlalchemy.url", "postgresql://{tenant}@127.0.0.1/app_{tenant}")
    result = proj.alembic("-x", "tenant=acme", "upgrade", "head", ok=False)
    assert "{tenant} may stand only in the database part" in result.stdout


# -- 9. one case for tenant names ----------------------------------------------------
@pytest.mark.orchestration
@pytest.mark.postgresql
def test_upper_case_tenant_names_are_refused(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = schema_project(project, pg, monkeypatch)
    proj.revision("one", upgrade=ACCOUNT)
    proj.alembic("-x", "tenant=acme", "upgrade", "head")
    result = proj.alembic(
        "-x", "tenant=ACME", "-x", "create=true", "upgrade", "head", ok=False
    )
    assert result.code == 255
    assert "invalid tenant name 'ACME' from -x tenant: 1 to 63 lower-case" in (
        result.stdout
    )
    with pg.engine().connect() as conn:
        schemas = set(conn.scalars(sa.text("SELECT nspname FROM pg_namespace")))
    assert "ACME" not in schemas and "acme" in schemas


# -- 10. every option checked when env.py loads, before any connection --------------
BAD_OPTIONS = [
    ("exclude_views", "maybe"),
    ("keep_unknown_tables", "maybe"),
    ("skip_empty_revisions", "2"),
    ("skip_index_drops_of_dropped_tables", "nope"),
    ("column_order", "id, created_at"),
]


@pytest.mark.console_script  # FAILED and exit status 255, per template
@pytest.mark.orchestration
@pytest.mark.parametrize("template", TEMPLATES)
def test_bad_options_fail_before_connecting(
    template: str,
    project: Callable[..., Project],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = project(template)
    if template == "multitenant":
        proj.set_option("tenant_strategy", "schema")
        proj.set_option("sqlalchemy.url", DEAD_PG)
    elif template == "multidb-mixed":
        proj.set_option("sqlalchemy.url", DEAD_PG, section="main")
    else:
        proj.set_option("sqlalchemy.url", DEAD_PG)
    monkeypatch.chdir(proj.root)
    # end to end: a writing and a read-only command through the CLI ...
    runs = [("column_order", "id, created_at", ["upgrade", "head"])]
    runs.append(("exclude_views", "maybe", ["current"]))
    for key, value, command_args in runs:
        result = proj.alembic(
            *TENANT.get(template, []), "-x", f"{key}={value}", *command_args, ok=False
        )
        assert result.code == 255, result.output
        assert f"FAILED: invalid {'' if key == 'column_order' else 'value '}" in (
            result.stdout
        )
        assert key in result.stdout and "connect" not in result.output.lower()
    # ... and every bad option where env.py reads them, in this process
    for key, value in BAD_OPTIONS:
        config = Config(str(proj.ini))
        config.cmd_opts = argparse.Namespace(x=[f"{key}={value}"])
        with pytest.raises(InvalidOption) as info:
            SETTINGS[template].load(config)
        message = str(info.value)
        assert message.startswith(
            f"invalid {'' if key == 'column_order' else 'value '}"
        )
        assert key in message


@pytest.mark.orchestration
def test_bad_option_fails_when_every_tenant_is_at_head(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    proj.revision("t", upgrade=ACCOUNT)
    proj.alembic("-x", "tenant=all", "upgrade", "head")
    result = proj.alembic(
        "-x", "tenant=all", "-x", "keep_unknown_tables=maybe", "upgrade", "head",
        ok=False,
    )  # fmt: skip
    assert "invalid value 'maybe' for -x keep_unknown_tables" in result.stdout
    assert "[1/2]" not in result.output


# -- 11. configuration problems: one FAILED line -------------------------------------
def _one_failed_line(result: object) -> str:
    stdout: str = getattr(result, "stdout")  # noqa: B009
    output: str = getattr(result, "output")  # noqa: B009
    assert "Traceback" not in output, output
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("FAILED: "), stdout
    return lines[0]


@pytest.mark.orchestration
@pytest.mark.postgresql
def test_tenant_sources_fail_in_one_line(
    project: Callable[..., Project], pg: ServerDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = schema_project(project, pg, monkeypatch)
    proj.set_option("tenants_query", "SELECT slug FROM no_such_tenants_table")
    line = _one_failed_line(
        proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    )
    assert "tenants_query failed on sqlalchemy.url (postgresql+psycopg://" in line
    assert "no_such_tenants_table" in line
    proj.set_option("tenant_strategy", "database")
    proj.set_option("sqlalchemy.url", "sqlite:///%(here)s/tenants/{tenant}.db")
    proj.set_option("tenants_url", DEAD_PG)
    line = _one_failed_line(
        proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    )
    assert "cannot connect to tenants_url (postgresql+psycopg://postgres:***@" in line


@pytest.mark.orchestration
def test_config_problems_fail_in_one_line(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = project("data-flag")
    monkeypatch.chdir(data.root)
    data.set_option("data_version_table", "d" * 64)
    line = _one_failed_line(data.alembic("current", ok=False))
    assert "invalid data_version_table 'dddd" in line and "(64 characters)" in line
    multi = project("multidb-mixed", name="multi")
    monkeypatch.chdir(multi.root)
    multi.set_option("sqlalchemy.url", "nosuchdb://x/y", section="analytics")
    line = _one_failed_line(multi.alembic("upgrade", "head", ok=False))
    assert "invalid sqlalchemy.url in [analytics]" in line and "nosuchdb" in line


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_unreachable_database_in_multidb_is_named(
    driver: str, project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = project("multidb-mixed")
    proj.set_option(
        "sqlalchemy.url", DEAD_PG.replace("psycopg", driver), section="analytics"
    )
    monkeypatch.chdir(proj.root)
    line = _one_failed_line(proj.alembic("upgrade", "head", ok=False))
    assert line.startswith(
        f"FAILED: cannot connect to database 'analytics' (postgresql+{driver}://"
    )


# -- 12. output says only what is true and useful ------------------------------------
def test_sqlite_runs_say_transactional_ddl(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    for template in ("multitenant", "multidb-mixed"):
        proj = project(template, name=template)
        monkeypatch.chdir(proj.root)
        proj.revision("one", **{UPGRADE_FN[template]: ACCOUNT})
        out = proj.alembic(*TENANT.get(template, []), "upgrade", "head").stderr
        assert "Will assume transactional DDL" in out
        assert "non-transactional" not in out


def _ran(result: Result) -> str:
    """*result*'s output, once it is sure the command ran: exit 0, or
    ``check`` saying the models are ahead or the database behind -- not
    env.py failing (which would say nothing either)."""
    checked = ("New upgrade operations detected", "Target database is not up to date")
    assert "Traceback" not in result.output, result.output
    assert result.code == 0 or any(c in result.output for c in checked), result.output
    return result.output


def test_read_only_commands_say_nothing_about_commits_or_tenants(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    multi = project("multidb-mixed", name="multi")
    monkeypatch.chdir(multi.root)
    multi.alembic("upgrade", "head")
    use_metadata(multi)
    for args in (["current"], ["revision", "--autogenerate", "-m", "x"], ["check"]):
        assert "Committed" not in _ran(multi.alembic(*args, ok=None))
    assert "Committed 2 databases: main, analytics" in (
        multi.alembic("upgrade", "head").stderr
    )
    tenants = project("multitenant", name="tenants")
    monkeypatch.chdir(tenants.root)
    tenants.revision("one", upgrade=ACCOUNT)
    up = tenants.alembic("-x", "tenant=acme", "upgrade", "head").stderr
    assert "(1 revision) in" in up
    use_metadata(tenants)
    out = tenants.alembic(
        "-x", "tenant=acme", "revision", "--autogenerate", "-m", "x"
    ).output
    assert "[1/1]" not in out and "Tenants:" not in out
    data = project("data-flag", name="data")
    monkeypatch.chdir(data.root)
    data.revision("d", data_upgrades='op.execute("SELECT 1")')
    assert "Data migrations pending" in data.alembic("upgrade", "head").stderr
    use_metadata(data)
    for args in (["revision", "--autogenerate", "-m", "x"], ["check"]):
        assert "Data migrations pending" not in _ran(data.alembic(*args, ok=None))


def test_revision_without_ruff_says_so(
    project: Callable[..., Project],
) -> None:
    proj = project("async-shared")
    hide_ruff = (
        "import sys, shutil; sys.modules['ruff'] = None;"
        " shutil.which = lambda *a, **k: None;"
        " from alembic.config import main; main(['revision', '-m', 'plain'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_ruff],
        cwd=proj.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (path,) = proj.versions.glob("*_plain.py")
    assert (
        f"ruff is not installed: {path} is left as generated, not formatted"
        " (pip install ruff to format revision files)"
    ) in " ".join(done.stdout.split())


# -- 13. current per tenant / per database is labelled -------------------------------
def test_current_lines_are_labelled(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = project("multitenant", name="tenants")
    monkeypatch.chdir(tenants.root)
    rev = tenants.revision("one", upgrade=ACCOUNT)
    tenants.alembic("-x", "tenant=all", "upgrade", "head")
    out = tenants.alembic("-x", "tenant=all", "current").stdout
    assert out.splitlines() == [f"acme: {rev} (head)", f"globex: {rev} (head)"]
    assert tenants.alembic("-x", "tenant=acme", "current").stdout.strip() == (
        f"{rev} (head)"
    )
    # no tenant: every known one (a stock habit, also with --check-heads)
    check_heads = "check_heads" in inspect.signature(command.current).parameters
    for args in (("current",), ("current", "--check-heads"))[: 1 + check_heads]:
        plain = tenants.alembic(*args)
        assert plain.stdout.splitlines() == [
            f"acme: {rev} (head)",
            f"globex: {rev} (head)",
        ]
        assert "no -x tenant given, so every known tenant" in plain.stderr
    # history with the current revision marked: per tenant, labelled
    tenants.alembic("-x", "tenant=globex", "stamp", "base")
    marked = tenants.alembic("-x", "tenant=all", "history", "--indicate-current")
    assert marked.stdout.splitlines() == [
        f"acme: <base> -> {rev} (head) (current), one",
        f"globex: <base> -> {rev} (head), one",
    ]
    tenants.alembic("-x", "tenant=globex", "stamp", "head")
    strict = tenants.alembic("-x", "tenant= all", "current", ok=False)
    assert "invalid tenant name ' all' from -x tenant" in strict.stdout
    multi = project("multidb-mixed", name="multi")
    monkeypatch.chdir(multi.root)
    mrev = multi.revision("one", upgrade_main=ACCOUNT)
    multi.alembic("upgrade", "head")
    out = multi.alembic("current").stdout
    assert out.splitlines() == [f"main: {mrev} (head)", f"analytics: {mrev} (head)"]
    one = multi.alembic("-x", "db=analytics", "current").stdout  # labelled too
    assert one.splitlines() == [f"analytics: {mrev} (head)"]


# -- 14. misspelled options: ini warned, -x refused ----------------------------------
@pytest.mark.orchestration
def test_misspelled_options_are_named(
    project: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ini option close to ours is a warning; an unknown or repeated -x
    key is an error before any SQL: a dry run never becomes a real one."""
    proj = project("multitenant")
    monkeypatch.chdir(proj.root)
    _failing(proj)
    db = proj.root / "tenants" / "acme.db"
    proj.set_option("continue_on_eror", "true")
    result = proj.alembic("-x", "tenant=all", "upgrade", "head", ok=False)
    assert (
        "unknown option continue_on_eror in [alembic] is ignored:"
        " did you mean continue_on_error?"
    ) in result.stderr
    assert "1 not attempted" in result.stderr  # really ignored: stopped at acme
    for args, said in (
        (("-x", "paln=true"), "unknown -x 'paln': did you mean -x plan?"),
        (("-x", "contineu=true"), "unknown -x 'contineu': did you mean -x continue?"),
        (
            ("-x", "continue_on_error=true"),
            "unknown -x 'continue_on_error': did you mean -x continue?"
            " (continue_on_error is its ini name)",
        ),
        (("-x", "foo=bar"), "unknown -x 'foo': this environment reads -x "),
        (
            ("-x", "tenant=globex"),
            "-x tenant is given 2 times ('acme', 'globex'): give it once",
        ),
    ):
        for words in (("upgrade", "head"), ("current",)):
            before = db.stat().st_mtime_ns if db.exists() else None
            bad = proj.alembic("-x", "tenant=acme", *args, *words, ok=False)
            assert bad.code == 255
            (line,) = [x for x in bad.stdout.splitlines() if "FAILED" in x]
            assert said in line, line
            assert "declared in x_keys" in line or "given" in line
            assert (db.stat().st_mtime_ns if db.exists() else None) == before
    # a key of the user's own env.py, declared: accepted and read
    env_py = proj.env_py.read_text()
    proj.env_py.write_text(
        env_py.replace(
            "settings = TenantSettings.load(config)\n",
            "settings = TenantSettings.load(config)\n"
            "from alembic_recipes import get_option\n"
            'mine, _ = get_option(config, "my_own_flag")\n'
            'print("my_own_flag is", mine)\n',
        )
    )
    refused = proj.alembic("-x", "tenant=acme", "-x", "my_own_flag=1", "current",
                           ok=False)  # fmt: skip
    assert "unknown -x 'my_own_flag'" in refused.stdout
    proj.set_option("x_keys", "my_own_flag, other")
    quiet = proj.alembic("-x", "tenant=acme", "-x", "my_own_flag=1", "current")
    assert "my_own_flag is 1" in quiet.stdout
    assert "unknown -x" not in quiet.output
    # no shared scope here: "shared" is not a new tenant to create
    shared = proj.alembic("-x", "tenant=shared", "-x", "create=true", "upgrade",
                          "head", ok=False)  # fmt: skip
    assert "-x tenant=shared names the shared scope, and this environment has none" in (
        shared.stdout
    )
    assert shared.code == 255 and not (proj.root / "tenants" / "shared.db").exists()


# -- 16. the ini keeps stock Alembic's commented options -----------------------------
@pytest.mark.parametrize("template", TEMPLATES)
def test_ini_keeps_stock_commented_options(
    template: str, project: Callable[..., Project]
) -> None:
    text = project(template).ini.read_text()
    for option in (
        "# file_template = ",
        "# timezone =",
        "# truncate_slug_length = 40",
        "# revision_environment = false",
        "# version_locations = ",
        "# output_encoding = utf-8",
        "# black.type = console_scripts",
        "# ruff.module = ruff",
        "format.type = alembic_recipes_ruff",
    ):
        assert option in text, option


# -- 17. two-phase commit for real ----------------------------------------------------
@pytest.fixture
def cluster_db(pg_cluster: sa.URL) -> Iterator[ServerDB]:
    """A throwaway database on the test-owned cluster."""
    yield from throwaway_on(pg_cluster)


@pytest.fixture
def cluster_db2(pg_cluster: sa.URL) -> Iterator[ServerDB]:
    """A second one."""
    yield from throwaway_on(pg_cluster)


def _prepared(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT gid FROM pg_prepared_xacts")))


@pytest.mark.postgresql
@pytest.mark.mysql
def test_two_phase_commit_for_real(
    project: Callable[..., Project],
    cluster_db: ServerDB,
    cluster_db2: ServerDB,
    mysql: ServerDB,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two PostgreSQL databases (a cluster of our own, max_prepared_transactions
    = 10) and MariaDB: success, a failure after prepare, a failure at prepare."""
    proj = project("multidb-mixed")
    monkeypatch.chdir(proj.root)
    proj.set_option("sqlalchemy.url", cluster_db.driver_url("psycopg"), section="main")
    proj.set_option(
        "sqlalchemy.url", cluster_db2.driver_url("asyncpg"), section="analytics"
    )
    add_database(proj, "audit", mysql.driver_url("pymysql"))
    proj.set_option("two_phase", "true")
    ok = proj.revision(
        "ok", upgrade_main=ACCOUNT, upgrade_analytics=ACCOUNT, upgrade_audit=ACCOUNT
    )
    urls = [
        cluster_db.driver_url("psycopg"),
        cluster_db2.driver_url("psycopg"),
        mysql.driver_url("pymysql"),
    ]
    proj.alembic("upgrade", "head")
    assert [versions(u) for u in urls] == [[ok]] * 3
    assert _prepared(urls[0]) == _prepared(urls[1]) == []
    # MariaDB fails after both PostgreSQL transactions were prepared
    late = proj.revision(
        "late",
        upgrade_main='op.create_table("t_main", sa.Column("id", sa.Integer))',
        upgrade_analytics='op.create_table("t_an", sa.Column("id", sa.Integer))',
        upgrade_audit='op.execute("INSERT INTO nope VALUES (1)")',
    )
    result = proj.alembic("upgrade", "head", ok=False)
    assert "Rolled back every database (main, analytics, audit)" in result.stderr
    assert [versions(u) for u in urls] == [[ok]] * 3
    assert "t_main" not in tables(urls[0]) and "t_an" not in tables(urls[1])
    assert _prepared(urls[0]) == _prepared(urls[1]) == []
    # analytics fails AT prepare (a deferred foreign key), after main prepared
    path = proj.revision_file(late)
    text = path.read_text().replace('op.execute("INSERT INTO nope VALUES (1)")', "")
    text = text.replace(
        'op.create_table("t_an", sa.Column("id", sa.Integer))',
        'op.execute("CREATE TABLE t_an (id int REFERENCES account'
        ' DEFERRABLE INITIALLY DEFERRED)")\n'
        '    op.execute("INSERT INTO t_an VALUES (42)")',
    )
    path.write_text(text)
    result = proj.alembic("upgrade", "head", ok=False)
    assert "ForeignKeyViolation" in result.stderr, result.stderr
    assert [versions(u) for u in urls] == [[ok]] * 3
    assert "t_main" not in tables(urls[0]) and "t_an" not in tables(urls[1])
    assert _prepared(urls[0]) == _prepared(urls[1]) == []
    # fixed: all three commit
    path.write_text(text.replace("VALUES (42)", "VALUES (NULL)"))
    proj.alembic("upgrade", "head")
    assert [versions(u) for u in urls] == [[late]] * 3


def test_bin_is_the_test_environment() -> None:
    """The CLI the tests drive is the one installed beside this interpreter."""
    assert (BIN / "alembic").exists()


def test_in_process_runs_match_the_console_script(
    project: Callable[..., Project], tmp_path: Path
) -> None:
    """The tests' in-process runs (``Project.alembic``) give what the console
    script gives: exit status, stdout, stderr (logging lines, ``FAILED:``,
    argparse's usage error, a traceback ending in the original exception) and
    the database, each from the same fresh database."""
    url = f"sqlite:///{tmp_path}/run/app.db"
    proj = project("data-flag", url=url)
    proj.revision("create account", schema_upgrades=ACCOUNT)
    proj.revision("boom", schema_upgrades="undefined_helper()\n")

    def run(args: tuple[str, ...], process: bool) -> tuple[Result, list[str]]:
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        (tmp_path / "run").mkdir()
        result = proj.alembic(*args, ok=None, process=process)
        return result, versions(url)

    for args in [
        ("upgrade", "+1"),  # logging lines, exit 0
        ("-x", "data=maybe", "upgrade", "head"),  # FAILED:, exit 255
        ("upgrade", "head"),  # NameError: a traceback, exit 1
        ("history",),  # stdout
        ("no-such-command",),  # argparse's usage error, exit 2
    ]:
        (console, after), (in_process, after_in_process) = (
            run(args, process=True),
            run(args, process=False),
        )
        assert (in_process.code, after_in_process) == (console.code, after), args
        assert in_process.stdout == console.stdout, args
        if "Traceback" in console.stderr:
            last = console.stderr.strip().splitlines()[-1]
            assert "NameError: name 'undefined_helper'" in last
            assert "Traceback (most recent call last):" in in_process.stderr
            assert in_process.stderr.strip().splitlines()[-1] == last
        else:
            assert in_process.stderr == console.stderr, args
