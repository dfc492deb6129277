"""``${NAME}`` in a ``sqlalchemy.url``: the environment variable's value, in
every template and every section that holds a URL (a password from a
Kubernetes Secret, a host per deployment); one not set is one ``FAILED:``
line naming it, before any SQL; a password from it is never printed."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from support.processes import BIN, cli_environment
from support.projects import Project
from support.servers import ServerDB, tables


def _alembic(proj: Project, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "alembic"), *args],
        cwd=proj.root,
        capture_output=True,
        text=True,
        env={**cli_environment(), **env},
        timeout=120,
    )


def test_a_password_from_the_environment_is_used_and_never_shown(
    project: Callable[..., Project], pg: ServerDB
) -> None:
    url = sa.make_url(pg.driver_url("psycopg"))
    template = url.set(password="${DB_PASSWORD}", host="${DB_HOST}")
    proj = project("async-shared")
    proj.set_option(
        "sqlalchemy.url",
        template.render_as_string(hide_password=False)
        .replace("%24%7BDB_PASSWORD%7D", "${DB_PASSWORD}")
        .replace("%24%7BDB_HOST%7D", "${DB_HOST}"),
    )
    proj.revision("r1", upgrade='op.create_table("a", sa.Column("id", sa.Integer))')
    env = {"DB_PASSWORD": "s3cr3t-pw", "DB_HOST": str(url.host)}
    for args in (
        ("upgrade", "head"),
        ("current", "--verbose"),
        ("upgrade", "head", "--sql"),
    ):
        done = _alembic(proj, *args, **env)
        assert done.returncode == 0, done.stderr
        assert "s3cr3t-pw" not in done.stdout + done.stderr
    assert "a" in tables(pg.driver_url("psycopg"))

    missing = _alembic(proj, "upgrade", "head", DB_HOST=str(url.host))
    assert missing.returncode == 255
    assert missing.stdout.strip().splitlines()[-1] == (
        "FAILED: sqlalchemy.url in [alembic] uses the environment variable"
        " DB_PASSWORD, which is not set: set DB_PASSWORD, or write the value in"
        " the URL"
    )


@pytest.mark.parametrize("template", ["multitenant", "multidb-mixed", "data-flag"])
def test_every_template_reads_urls_from_the_environment(
    project: Callable[..., Project], template: str
) -> None:
    proj = project(template)
    where = proj.root / "elsewhere"
    if template == "multitenant":
        proj.set_option("sqlalchemy.url", "sqlite:///${DATA_DIR}/{tenant}.db")
        args = ("-x", "tenant=acme", "upgrade", "head")
        made = where / "acme.db"
    elif template == "multidb-mixed":
        proj.set_option("sqlalchemy.url", "sqlite:///${DATA_DIR}/main.db", "main")
        proj.set_option(
            "sqlalchemy.url", "sqlite:///${DATA_DIR}/analytics.db", "analytics"
        )
        args = ("upgrade", "head")
        made = where / "analytics.db"
    else:
        proj.set_option("sqlalchemy.url", "sqlite:///${DATA_DIR}/app.db")
        args = ("upgrade", "head")
        made = where / "app.db"
    where.mkdir()
    proj.revision("r1")
    done = _alembic(proj, *args, DATA_DIR=str(where))
    assert done.returncode == 0, done.stderr
    assert made.exists()
    offline = _alembic(proj, *args, "--sql", DATA_DIR=str(where))
    assert offline.returncode == 0, offline.stderr

    unset = _alembic(proj, *args)
    assert unset.returncode == 255
    assert "uses the environment variable DATA_DIR, which is not set" in (unset.stdout)


def test_a_whole_tenant_url_from_the_environment_keeps_its_tenant_mark(
    project: Callable[..., Project],
) -> None:
    """``sqlalchemy.url = ${DATABASE_URL}``, the URL from a Secret, with
    ``{tenant}`` in it: each tenant gets its own database."""
    proj = project("multitenant")
    proj.set_option("sqlalchemy.url", "${DATABASE_URL}")
    proj.revision("r1")
    where = proj.root / "secret-place"
    url = f"sqlite:///{where}/{{tenant}}.db"
    done = _alembic(
        proj, "-x", "tenant=acme,globex", "upgrade", "head", DATABASE_URL=url
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in where.glob("*.db")) == [
        "acme.db",
        "alembic_recipes_fleet_run.db",
        "globex.db",
    ]
