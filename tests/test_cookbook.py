"""Cookbook recipes beyond the templates: several environments in one ini
(``alembic -n``), existing tables as code (``render-tables``), and operations
applied directly (``apply_metadata``) -- each through the real CLI or the
public helper, then read back from the database."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from alembic_recipes import apply_metadata
from support.processes import BIN, cli_environment, recipes
from support.projects import Project, set_body
from support.servers import MYSQL_URL, PG_URL, tables, throwaway, versions

# --- several environments in one ini ---------------------------------------

# environment name -> (template, the function a schema change goes in)
ENVIRONMENTS = {
    "data": ("data-flag", ["schema_upgrades"]),
    "events": ("async-shared", ["upgrade"]),
    "dbs": ("multidb-mixed", ["upgrade_main", "upgrade_analytics"]),
    "tenants": ("multitenant", ["upgrade"]),
}


def _section(text: str, name: str) -> str:
    start = text.index(f"[{name}]\n")
    end = text.find("\n[", start + 1)
    return text[start : len(text) if end == -1 else end + 1]


def _one_ini(root: Path) -> str:
    """One alembic.ini for the four environments, as the README shows it:
    [DEFAULT] holds what they share, one section per environment, the
    multidb environment's databases in [dbs.main] / [dbs.analytics]; the
    post-write hooks and logging sections are shared."""
    parts = ["[DEFAULT]\nprepend_sys_path = .\npath_separator = os\n"]
    urls = {
        "data": "sqlite:///%(here)s/data.db",
        "events": "sqlite+aiosqlite:///%(here)s/events.db",
        "tenants": "sqlite:///%(here)s/tenant_dbs/{tenant}.db",
    }
    hooks_and_logging = ""
    for env, (template, _) in ENVIRONMENTS.items():
        scratch = root / f"init-{env}"
        scratch.mkdir()
        subprocess.run(
            [str(BIN / "alembic"), "init", "-t", template, str(root / env)],
            cwd=scratch, env=cli_environment(), check=True, capture_output=True,
        )  # fmt: skip
        text = (scratch / "alembic.ini").read_text()
        section = _section(text, "alembic").replace("[alembic]", f"[{env}]", 1)
        section = re.sub(r"^(prepend_sys_path|path_separator) = .*\n", "", section,
                         flags=re.M)  # fmt: skip
        if env in urls:
            old = re.findall(r"^sqlalchemy\.url = .*$", section, re.M)[0]
            section = section.replace(old, f"sqlalchemy.url = {urls[env]}", 1)
        parts.append(section)
        if template == "multidb-mixed":
            for db in ("main", "analytics"):
                parts.append(_section(text, db).replace(f"[{db}]", f"[{env}.{db}]"))
        hooks_and_logging = text[text.index("[post_write_hooks]") :]
    return "\n".join(parts) + "\n" + hooks_and_logging


def test_several_environments_in_one_ini(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "alembic.ini").write_text(_one_ini(root))
    proj = Project(root, "several")
    tenant = {"tenants": ["-x", "tenant=acme"]}
    revisions = {}
    for env, (_, functions) in ENVIRONMENTS.items():
        out = proj.alembic("-n", env, *tenant.get(env, []), "revision", "-m", env)
        found = re.findall(r"Generating (\S+\.py)", out.output)
        assert found, out.output
        path = Path(found[0])
        assert path.parent == root / env / "versions"
        text = path.read_text()
        for fn in functions:
            table = f"{env}_{fn.rsplit('_', 1)[-1]}"
            column = 'sa.Column("id", sa.Integer, primary_key=True)'
            text = set_body(text, fn, f'op.create_table("{table}", {column})')
        path.write_text(text)
        revisions[env] = re.findall(r'^revision: str = "(\w+)"', text, re.M)[0]
    for env in ENVIRONMENTS:
        proj.alembic("-n", env, *tenant.get(env, []), "upgrade", "head")
    db = f"sqlite:///{root}"
    assert tables(f"{db}/data.db") >= {"data_upgrades", "alembic_version"}
    assert versions(f"{db}/data.db") == [revisions["data"]]
    assert "events_upgrade" in tables(f"{db}/events.db")
    assert versions(f"{db}/events.db") == [revisions["events"]]
    assert "dbs_main" in tables(f"{db}/main.db")
    assert "dbs_analytics" in tables(f"{db}/analytics.db")
    assert (
        versions(f"{db}/main.db")
        == versions(f"{db}/analytics.db")
        == [revisions["dbs"]]
    )
    assert "tenants_upgrade" in tables(f"{db}/tenant_dbs/acme.db")
    assert versions(f"{db}/tenant_dbs/acme.db") == [revisions["tenants"]]
    # the tenant databases and their lock files stay out of the script directory
    assert not list((root / "tenants").glob("*.db*"))
    # no environment touched another's database
    assert "events_upgrade" not in tables(f"{db}/data.db")
    current = proj.alembic("-n", "tenants", "-x", "tenant=acme", "current").stdout
    assert f"{revisions['tenants']} (head)" in current
    proj.alembic("-n", "dbs", "downgrade", "base")
    assert versions(f"{db}/main.db") == versions(f"{db}/analytics.db") == []
    assert versions(f"{db}/data.db") == [revisions["data"]]


# --- existing tables as code -------------------------------------------------

LEGACY = {
    "sqlite": [
        "CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(200)"
        " NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,"
        " CONSTRAINT uq_users_email UNIQUE (email))",
        "CREATE TABLE props (id INTEGER NOT NULL PRIMARY KEY, user_id INTEGER NOT"
        " NULL, name VARCHAR(50) NOT NULL, value TEXT, CONSTRAINT fk_props_user"
        " FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE)",
        "CREATE INDEX ix_props_name ON props (name, user_id)",
    ],
    "postgresql": [
        "CREATE TABLE users (id SERIAL PRIMARY KEY, email VARCHAR(200) NOT NULL"
        " CONSTRAINT uq_users_email UNIQUE, created_at TIMESTAMPTZ DEFAULT now(),"
        " tags TEXT[], doc JSONB)",
        "CREATE TABLE props (id BIGSERIAL PRIMARY KEY, user_id INTEGER NOT NULL"
        " CONSTRAINT fk_props_user REFERENCES users (id) ON DELETE CASCADE,"
        " name VARCHAR(50) NOT NULL, value TEXT, amount NUMERIC(10, 2))",
        "CREATE INDEX ix_props_name ON props (name, user_id)",
        "COMMENT ON TABLE props IS 'user properties'",
    ],
    "mysql": [
        "CREATE TABLE users (id INT(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " email VARCHAR(200) NOT NULL, created_at DATETIME DEFAULT"
        " CURRENT_TIMESTAMP, UNIQUE KEY uq_users_email (email)) ENGINE=InnoDB",
        "CREATE TABLE props (id INT(11) NOT NULL PRIMARY KEY, user_id INT(11) NOT"
        " NULL, name VARCHAR(50) NOT NULL, value MEDIUMTEXT, KEY ix_props_name"
        " (name, user_id), CONSTRAINT fk_props_user FOREIGN KEY (user_id)"
        " REFERENCES users (id) ON DELETE CASCADE) ENGINE=InnoDB"
        " COMMENT='user properties'",
    ],
}


@pytest.fixture
def two_databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The legacy database and an empty one, on the server of the test's kind."""
    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/legacy.db", f"sqlite:///{tmp_path}/app.db"
        return
    base, driver, server = {
        "postgresql": (PG_URL, "psycopg", "PostgreSQL"),
        "mysql": (MYSQL_URL, "pymysql", "MariaDB"),
    }[kind]
    with ExitStack() as stack:
        legacy, app = (
            stack.enter_context(contextmanager(throwaway)(base, driver, server))
            for _ in range(2)
        )
        yield legacy.driver_url(driver), app.driver_url(driver)


KINDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", marks=pytest.mark.mysql),
]


def _kind(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def _diffs(reference: str, url: str) -> list[object]:
    """What autogenerate finds between two databases' tables."""
    metadata = sa.MetaData()
    source = sa.create_engine(reference, poolclass=sa.pool.NullPool)
    with source.connect() as conn:
        names = [
            n for n in sa.inspect(conn).get_table_names() if n != "alembic_version"
        ]
        metadata.reflect(conn, only=names)
    return _diffs_to(url, metadata)


@pytest.mark.parametrize("two_databases", KINDS, indirect=True)
def test_render_tables_adopts_an_existing_database(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    """render-tables' code, pasted into a first revision, builds the same
    tables elsewhere; the legacy database is then stamped (the README's steps)."""
    legacy, app = two_databases
    engine = sa.create_engine(legacy, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for statement in LEGACY[_kind(legacy)]:
            conn.exec_driver_sql(statement)
    shown = sa.make_url(legacy)
    if _kind(legacy) == "postgresql":  # trust auth: any password is accepted
        shown = shown.set(password="s3cret")
    rendered = _render_tables(shown.render_as_string(hide_password=False))
    assert rendered.returncode == 0, rendered.stderr
    code = rendered.stdout
    assert code.index("op.create_table('users'") < code.index("op.create_table('props'")
    assert "s3cret" not in code
    assert "nextval" not in code  # SERIAL: no default naming a missing sequence
    # the README's steps: a first revision holding the code, in a new project
    proj = Project(tmp_path / "proj", "data-flag")
    proj.root.mkdir()
    proj.alembic("init", "-t", "data-flag", "migrations")
    proj.set_option("sqlalchemy.url", app)
    rev = proj.revision("adopt the legacy tables")
    path = proj.revision_file(rev)
    text = path.read_text()
    imports = "".join(
        line + "\n" for line in code.splitlines() if line.startswith("from ")
    )
    upgrade = code[code.index("def upgrade()") : code.index("def downgrade()")]
    downgrade = code[code.index("def downgrade()") :]
    text = set_body(
        text, "schema_upgrades", upgrade.split("\n", 1)[1].replace("\n    ", "\n")
    )
    text = set_body(
        text, "schema_downgrades", downgrade.split("\n", 1)[1].replace("\n    ", "\n")
    )
    text = text.replace(
        "from alembic_recipes import", imports + "from alembic_recipes import"
    )
    path.write_text(text)
    proj.alembic("upgrade", "head")
    assert _diffs(legacy, app) == []
    assert versions(app) == [rev]
    # the existing database: stamped, not migrated
    proj.set_option("sqlalchemy.url", legacy)
    proj.alembic("stamp", rev)
    assert versions(legacy) == [rev]
    proj.set_option("sqlalchemy.url", app)
    proj.alembic("downgrade", "base")
    assert tables(app) == {"alembic_version"}


def _render_tables(*args: str) -> subprocess.CompletedProcess[str]:
    return recipes("render-tables", *args, timeout=60)


@pytest.mark.driver
def test_render_tables_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/legacy.db"
    sa.create_engine(url).connect().exec_driver_sql(
        "CREATE TABLE users (id INT)"
    ).close()
    result = _render_tables(url, "users", "nope")
    assert result.returncode == 255
    assert result.stderr.strip() == (f"FAILED: no table 'nope' in {url}: it has users")
    dead = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nowhere"
    result = _render_tables(dead)
    assert result.returncode == 255 and len(result.stderr.splitlines()) == 1
    assert "cannot connect to the database" in result.stderr
    assert "s3cret" not in result.stderr and "***" in result.stderr


# --- operations applied directly ---------------------------------------------


def _models() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "foo", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("data", sa.Integer),
        sa.Column("x", sa.Integer, nullable=False),
    )  # fmt: skip
    sa.Table("bat", metadata, sa.Column("info", sa.String(100)))
    return metadata


@pytest.mark.parametrize("two_databases", KINDS, indirect=True)
def test_apply_metadata(two_databases: tuple[str, str]) -> None:
    url, _ = two_databases
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY,"
            " old_data VARCHAR(50), x INTEGER)"
        )
        conn.exec_driver_sql("CREATE TABLE bar (data VARCHAR(50))")
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32))")
    metadata = _models()
    with pytest.raises(CommandError) as refused:
        apply_metadata(engine, metadata)
    assert "would drop table 'bar', column foo.old_data" in str(refused.value)
    assert tables(url) == {"foo", "bar", "alembic_version"}  # nothing sent
    with engine.connect() as conn:
        assert {c["name"] for c in sa.inspect(conn).get_columns("foo")} == {
            "id",
            "old_data",
            "x",
        }
    done = apply_metadata(engine, metadata, allow_drops=True)
    assert len(done) >= 4
    assert tables(url) == {"foo", "bat", "alembic_version"}
    assert _diffs_to(url, metadata) == []
    assert apply_metadata(engine, metadata) == []  # nothing left to do


@pytest.mark.parametrize("two_databases", KINDS[:2], indirect=True)
def test_apply_metadata_is_one_transaction(two_databases: tuple[str, str]) -> None:
    """A failing operation undoes the ones before it (transactional DDL)."""
    url, _ = two_databases
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO foo (id) VALUES (1)")
    metadata = _models()  # adds a NOT NULL column to a table with a row: fails
    with pytest.raises(sa.exc.DBAPIError) as failed:
        apply_metadata(engine, metadata)
    assert "x" in str(failed.value.statement)
    assert tables(url) == {"foo"}
    with engine.connect() as conn:  # the caller's transaction: a SAVEPOINT
        with conn.begin():
            with pytest.raises(sa.exc.DBAPIError):
                apply_metadata(conn, metadata)
            assert conn.scalar(sa.text("SELECT count(*) FROM foo")) == 1


def _diffs_to(url: str, metadata: sa.MetaData) -> list[object]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: name != "alembic_version",
            },
        )
        return list(compare_metadata(context, metadata))
