"""Real migration histories, written over years by other people, in every mode.

Three histories of 100+ revisions, as their projects ship them in their wheels:

* prefect 3.9.1 (120 revisions, asyncpg): ``autocommit_block()`` revisions,
  ``CREATE EXTENSION pg_trgm``, revisions that read the database;
* apache-airflow-core 3.3.2 (124 revisions, psycopg2): custom types that ask
  ``context.get_bind()`` for a dialect, revisions that branch on
  ``context.is_offline_mode()``, ``%`` in raw SQL;
* ckan 2.12.0 (110 revisions, psycopg): revisions reading
  ``op.get_context().config``.

Each runs once through stock Alembic on one database (its stock template),
then through the multitenant template -- default, ``compiled=true``,
``compiled=false``, ``workers=2``, ``provision=snapshot`` (tenants copied
from the template tenant, and one signed up from a spare schema), the schema
and the database strategy --
and every tenant's ``pg_dump --schema-only``, schema name normalised, must
equal stock Alembic's; then down by 100+ revisions (ckan: 70, its own 038
cannot be downgraded) and back up, equal again.

Each project is installed by its ``nox -s histories`` session (in the
default run; prefect's and airflow's pins conflict, so a venv each); elsewhere
these tests are skipped (marker ``history``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import BIN, cli_environment
from support.projects import set_ini_option
from support.servers import PG_URL, ServerDB, schema_dump

pytestmark = pytest.mark.history


@dataclass(frozen=True)
class History:
    name: str
    package: str
    versions: str
    """The versions folder, inside the installed package."""
    driver: str
    stock_template: str
    down_to: int
    """The revision (by position in the files' name order) to go down to."""

    def folder(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            pytest.skip(f"{self.package} is not installed (nox -s histories)")
        return Path(spec.origin).parent / self.versions


HISTORIES = [
    History(
        "prefect",
        "prefect",
        "server/database/_migrations/versions/postgresql",
        "asyncpg",
        "async",
        8,
    ),
    History("airflow", "airflow", "migrations/versions", "psycopg2", "generic", 8),
    # ckan's own downgrade of its 038 fails (a column added twice): 70 down
    History("ckan", "ckan", "migration/versions", "psycopg", "generic", 39),
]


def _environment(history: History, db: ServerDB, home: Path) -> dict[str, str]:
    """The alembic processes' environment: Airflow reads its settings' URL
    (its dialect) while migrating; Prefect keeps its home in *home*."""
    env = cli_environment()
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db.driver_url("psycopg2")
    env["AIRFLOW_HOME"] = str(home / "airflow")
    env["PREFECT_HOME"] = str(home / "prefect")
    return env


def _alembic(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "alembic"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"alembic {' '.join(args)}:\n{done.stderr[-6000:]}"
    return done.stdout + done.stderr  # (Airflow logs to stdout)


def _project(
    root: Path, history: History, template: str, url: str, env: dict[str, str]
) -> list[str]:
    """A project of *template* at *url* with *history*'s revision files;
    their revision ids, in file-name order."""
    root.mkdir()
    _alembic(root, env, "init", "-t", template, "migrations")
    versions = root / "migrations" / "versions"
    for path in sorted(history.folder().glob("*.py")):
        if path.name != "__init__.py":
            shutil.copy(path, versions / path.name)
    ini = root / "alembic.ini"
    line = re.compile(r"^sqlalchemy\.url = .*$", re.M)
    ini.write_text(line.sub(f"sqlalchemy.url = {url}", ini.read_text()))
    revision = re.compile(r"^revision(?::\s*str)?\s*=\s*u?['\"](\w+)['\"]", re.M)
    ids = []
    for path in sorted(versions.glob("*.py")):
        found = revision.search(path.read_text())
        assert found, path
        ids.append(found[1])
    return ids


@pytest.fixture(scope="module")
def stock(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[History], dict[str, list[str]]]]:
    """Each history run by stock Alembic on one database: its schema at head
    and at the revision the tests go down to (once per module)."""
    dumps: dict[str, dict[str, list[str]]] = {}
    created: list[str] = []
    admin = sa.create_engine(
        sa.make_url(PG_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )

    def run(history: History) -> dict[str, list[str]]:
        if history.name in dumps:
            return dumps[history.name]
        name = f"ar_stock_{history.name}_{os.getpid()}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        created.append(name)
        db = ServerDB(sa.make_url(PG_URL).set(database=name))
        root = tmp_path_factory.mktemp("stock") / history.name
        env = _environment(history, db, root.parent)
        ids = _project(
            root, history, history.stock_template, db.driver_url(history.driver), env
        )
        _alembic(root, env, "upgrade", "head")
        head = schema_dump(db.url, "public")
        _alembic(root, env, "downgrade", ids[history.down_to])
        down = schema_dump(db.url, "public")
        dumps[history.name] = {"head": head, "down": down}
        return dumps[history.name]

    yield run
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


TENANTS = ("t1", "t2")
MODES = {
    "default": (),
    "compiled": ("-x", "compiled=true"),
    "not compiled": ("-x", "compiled=false"),
    "workers": ("-x", "workers=2"),
    # new tenants copied from the template tenant, which the run replays
    # first; and a spare schema made, which a sign-up then renames
    "snapshot": ("-x", "provision=snapshot", "-x", "spares=1"),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.name)
def test_schema_tenants_end_as_stock_alembic_ends(
    history: History,
    mode: str,
    pg: ServerDB,
    tmp_path: Path,
    stock: Callable[[History], dict[str, list[str]]],
) -> None:
    """Every tenant schema equals stock Alembic's database: at head, after
    going down 100+ revisions (default mode), and back at head."""
    expected = stock(history)
    env = _environment(history, pg, tmp_path)
    root = tmp_path / "app"
    ids = _project(root, history, "multitenant", pg.driver_url(history.driver), env)
    _set(root, tenant_strategy="schema", tenants=", ".join(TENANTS))
    out = _alembic(root, env, "-x", "tenant=all", *MODES[mode], "upgrade", "head")
    made = len(TENANTS) + (mode == "snapshot")  # (and the template)
    assert f"Tenants: {made} total: {made} upgraded" in out, out
    if mode == "snapshot":
        assert out.count("copied from the snapshot of '_template'") == len(TENANTS)
        new = ("-x", "tenant=signup", "-x", "new=true", *MODES[mode])
        signed = _alembic(root, env, *new, "upgrade", "head")
        assert "tenant 'signup': renamed from spare '_template~" in signed, signed
        assert schema_dump(pg.url, "signup") == expected["head"]
    for tenant in TENANTS:
        assert schema_dump(pg.url, tenant) == expected["head"], tenant
    if mode != "default":
        return
    assert len(ids) - history.down_to >= (100 if history.name != "ckan" else 70)
    _alembic(root, env, "-x", "tenant=all", "downgrade", ids[history.down_to])
    for tenant in TENANTS:
        assert schema_dump(pg.url, tenant) == expected["down"], tenant
    _alembic(root, env, "-x", "tenant=all", "upgrade", "head")
    for tenant in TENANTS:
        assert schema_dump(pg.url, tenant) == expected["head"], tenant


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.name)
def test_tenant_databases_end_as_stock_alembic_ends(
    history: History,
    pg: ServerDB,
    tmp_path: Path,
    stock: Callable[[History], dict[str, list[str]]],
) -> None:
    """A database per tenant (two workers): each equals stock Alembic's."""
    expected = stock(history)
    env = _environment(history, pg, tmp_path)
    root = tmp_path / "app"
    each = pg.driver_url(history.driver).replace(
        f"/{pg.url.database}", f"/{pg.url.database}_{{tenant}}"
    )
    _project(root, history, "multitenant", each, env)
    _set(root, tenants=", ".join(TENANTS), tenants_url=pg.driver_url("psycopg"))
    try:
        _alembic(root, env, "-x", "tenant=all", "-x", "workers=2", "upgrade", "head")
        for tenant in TENANTS:
            database = f"{pg.url.database}_{tenant}"
            assert schema_dump(pg.url, "public", database) == expected["head"], tenant
    finally:
        pg.drop_tenant_databases(TENANTS)


def _set(root: Path, **options: str) -> None:
    for key, value in options.items():
        set_ini_option(root / "alembic.ini", key, value)


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.name)
def test_history_is_installed(history: History) -> None:
    """In its ``nox -s histories`` session a project is there: its tests above
    ran, none skipped."""
    if os.environ.get("ALEMBIC_RECIPES_HISTORY") != history.name:
        pytest.skip(f"runs in nox -s 'histories(project={history.name!r})'")
    assert history.folder().is_dir(), history.name
