"""The wheel registers our templates with the stock ``alembic`` CLI."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic_recipes.templates import TEMPLATES
from support.projects import Project, assert_ruff_clean
from support.servers import IN_CI

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = sorted(p.name for p in (ROOT / "templates").iterdir() if p.is_dir())


def synopsis(name: str) -> str:
    return (ROOT / "templates" / name / "README").read_text().splitlines()[0]


def test_every_template_is_shipped_and_has_a_synopsis() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    expected = {f"templates/{n}": f"alembic/templates/{n}" for n in TEMPLATE_DIRS}
    for name in TEMPLATE_DIRS:
        if name.endswith("-pyproject"):  # env.py and script.py.mako of the base
            base = name.removesuffix("-pyproject")
            for shared in ("env.py", "script.py.mako"):
                expected[f"templates/{base}/{shared}"] = (
                    f"alembic/templates/{name}/{shared}"
                )
    assert mapping == expected
    assert sorted(TEMPLATES) == TEMPLATE_DIRS
    for name in TEMPLATE_DIRS:
        files = {p.name for p in (ROOT / "templates" / name).iterdir()}
        if name.endswith("-pyproject"):
            assert {"README", "alembic.ini.mako", "pyproject.toml.mako"} == files
        else:
            assert {"README", "alembic.ini.mako", "env.py", "script.py.mako"} <= files
        assert synopsis(name).strip(), f"{name}/README needs a synopsis first line"


def _uv() -> list[str]:
    """The uv command: the test environment's own (a test dependency), else PATH's."""
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        message = "uv is needed to build and install the wheel"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return [found]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(*_uv(), "build", "--wheel", "--out-dir", out, ROOT, cwd=ROOT)
    (built,) = out.glob("alembic_recipes-*.whl")
    return built


@pytest.mark.wheel
def test_wheel_layout(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for name in TEMPLATE_DIRS:
        assert f"alembic/templates/{name}/README" in names
        assert f"alembic/templates/{name}/env.py" in names
    # nothing that would shadow Alembic or break `alembic list_templates`
    assert "alembic/__init__.py" not in names
    assert all(n.count("/") == 3 for n in names if n.startswith("alembic/"))
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert "alembic_recipes/py.typed" in names


# template -> (alembic options, SQLite files of its embedded default)
EMBEDDED_DEFAULTS = {
    "multitenant": (["-x", "tenant=all"], ["tenants/acme.db", "tenants/globex.db"]),
    "multidb-mixed": ([], ["main.db", "analytics.db"]),
}


def _venv(tmp: Path, name: str) -> Path:
    venv = tmp / name
    run(*_uv(), "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp)
    return venv / "bin"


def _sqlite_versions(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]


@pytest.mark.wheel
def test_fresh_venv_list_init_upgrade_uninstall(wheel: Path, tmp_path: Path) -> None:
    bin_ = _venv(tmp_path, "venv")
    run(*_uv(), "pip", "install", "--quiet", "--python", bin_ / "python", wheel,
        cwd=tmp_path)  # fmt: skip
    alembic = bin_ / "alembic"

    listing = run(alembic, "list_templates", cwd=tmp_path)
    assert "generic - " in listing
    for name in TEMPLATE_DIRS:
        assert f"{name} - {synopsis(name)}" in listing

    no_ruff = {"PATH": f"{bin_}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    for name in TEMPLATE_DIRS:
        proj = tmp_path / name
        proj.mkdir()
        run(alembic, "init", "-t", name, "./migrations", cwd=proj)
        made = run(alembic, "revision", "-m", "first", cwd=proj, env=no_ruff)
        assert "ruff is not installed: " in made and "left as generated" in made
        base = name.removesuffix("-pyproject")
        args, databases = EMBEDDED_DEFAULTS.get(base, ([], ["app.db"]))
        out = run(alembic, *args, "upgrade", "head", cwd=proj)
        assert "Running upgrade" in out
        for database in databases:
            assert len(_sqlite_versions(proj / database)) == 1

    fallback = run(bin_ / "python", "-m", "alembic_recipes", "list", cwd=tmp_path)
    assert "not visible" not in fallback

    site = Path(
        run(
            bin_ / "python",
            "-c",
            "import alembic; print(alembic.__file__)",
            cwd=tmp_path,
        ).strip()
    ).parent
    run(*_uv(), "pip", "uninstall", "--quiet", "--python", bin_ / "python",
        "alembic-recipes", cwd=tmp_path)  # fmt: skip
    assert sorted(p.name for p in (site / "templates").iterdir()) == sorted(
        p.name for p in (site / "templates").iterdir() if p.name not in TEMPLATE_DIRS
    )
    assert not any((site / "templates" / n).exists() for n in TEMPLATE_DIRS)
    after = run(alembic, "list_templates", cwd=tmp_path)
    assert "generic - " in after and "data-flag" not in after


@pytest.mark.wheel
def test_install_from_a_clone_as_the_readme_says(tmp_path: Path) -> None:
    """The README's first install, from a clone's parent directory: the
    package with its extra (psycopg, asyncpg), the templates listed."""
    readme = (ROOT / "README.md").read_text()
    (target,) = re.findall(r'^pip install "(\./alembic-recipes\[postgresql\])"',
                           readme, re.M)  # fmt: skip
    clone = tmp_path / "alembic-recipes"  # the tracked files, as a clone has them
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    bin_ = _venv(tmp_path, "venv")
    run(*_uv(), "pip", "install", "--quiet", "--python", bin_ / "python", target,
        cwd=tmp_path)  # fmt: skip
    listing = run(bin_ / "alembic", "list_templates", cwd=tmp_path)
    for name in TEMPLATE_DIRS:
        assert f"{name} - {synopsis(name)}" in listing
    run(bin_ / "python", "-c", "import asyncpg, psycopg", cwd=tmp_path)


@pytest.mark.wheel
def test_editable_install_lists_templates(tmp_path: Path) -> None:
    """An editable install puts copies of the templates beside Alembic's too
    (hatchling's editable wheel keeps force-include): visible, but refreshed
    only by reinstalling."""
    bin_ = _venv(tmp_path, "venv")
    run(*_uv(), "pip", "install", "--quiet", "--python", bin_ / "python",
        "--editable", ROOT, cwd=tmp_path)  # fmt: skip
    listing = run(bin_ / "alembic", "list_templates", cwd=tmp_path)
    for name in TEMPLATE_DIRS:
        assert f"{name} - {synopsis(name)}" in listing
    fallback = run(bin_ / "python", "-m", "alembic_recipes", "list", cwd=tmp_path)
    assert "not visible" not in fallback


@pytest.mark.wheel
def test_fallback_when_alembic_lives_elsewhere(wheel: Path, tmp_path: Path) -> None:
    """Alembic in one site directory, alembic-recipes in another (PYTHONPATH)."""
    bin_ = _venv(tmp_path, "venv")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]  # alembic and the others
    run(*_uv(), "pip", "install", "--quiet", "--python", bin_ / "python", *deps,
        cwd=tmp_path)  # fmt: skip
    other = tmp_path / "other"
    run(*_uv(), "pip", "install", "--quiet", "--no-deps", "--target", other, wheel,
        cwd=tmp_path)  # fmt: skip
    env = {"PYTHONPATH": str(other)}
    listing = run(
        bin_ / "python", "-m", "alembic_recipes", "list", cwd=tmp_path, env=env
    )
    assert "not visible to `alembic list_templates`" in listing
    for name in TEMPLATE_DIRS:
        assert f"{name} - {synopsis(name)}" in listing
    proj = tmp_path / "proj"
    proj.mkdir()
    run(bin_ / "python", "-m", "alembic_recipes", "init", "data-flag", "migrations",
        cwd=proj, env=env)  # fmt: skip
    run(bin_ / "alembic", "revision", "-m", "first", cwd=proj, env=env)
    run(bin_ / "alembic", "upgrade", "head", cwd=proj, env=env)
    assert len(_sqlite_versions(proj / "app.db")) == 1


@pytest.mark.parametrize(
    "template",
    [
        pytest.param(n, marks=pytest.mark.pyproject) if n.endswith("-pyproject") else n
        for n in TEMPLATE_DIRS
    ],
)
def test_plain_revision_is_ruff_clean(
    template: str, project: Callable[..., Project]
) -> None:
    proj = project(template)
    out = proj.alembic("revision", "-m", "plain").output
    (path,) = proj.versions.glob("*.py")
    assert str(path) in out
    assert_ruff_clean(path)
    assert_ruff_clean(proj.env_py)
