"""Test sessions.  Plain ``nox`` runs them all (the README's test command).

* ``lint``: ruff check + ruff format --check (package, tests, templates' Python).
* ``typecheck``: mypy --strict on ``alembic_recipes``.
* ``docs``: the documentation site, ``zensical build --strict`` (``nox -s docs --
  serve [-a 127.0.0.1:8765]`` serves it instead, passing on zensical's options).
* ``tests``: the suite against the newest Alembic/SQLAlchemy/drivers.
* ``tests_oldest``: the same suite with every dependency at the floor that
  pyproject.toml declares (``>=X`` installed as ``==X``).
* ``tests_pyproject_oldest``: the pyproject.toml flavours on the oldest Alembic
  that reads ``[tool.alembic]`` (1.16.0).
* ``histories``: real migration histories of 100+ revisions, as prefect,
  apache-airflow-core and ckan ship them, in every fleet mode, compared with
  stock Alembic's run (``tests/test_real_histories.py``).

Not in the default run: ``coverage`` -- the ``tests`` suite measured with
coverage.py, the test process and every ``alembic`` process it starts
(``nox -s coverage``; it makes the suite about 1.4 times slower).
"""

from __future__ import annotations

import os

import nox
from packaging.requirements import Requirement

nox.options.default_venv_backend = "uv|virtualenv"
# Tests start hundreds of `alembic` processes: compile the installed packages
# once, so they start fast even where PYTHONDONTWRITEBYTECODE is set (measured
# here: the suite ran 2.4x slower without it).
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
nox.options.sessions = [
    "lint",
    "typecheck",
    "docs",
    "tests",
    "tests_oldest",
    "tests_pyproject_oldest",
    "histories",
]
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
TEST_DEPS = nox.project.dependency_groups(PYPROJECT, "test")
DOCS_DEPS = nox.project.dependency_groups(PYPROJECT, "docs")
PYPROJECT_ALEMBIC = "1.16.0"  # the first Alembic that reads [tool.alembic]
PYTEST = ("pytest", "-n", "2", "-p", "no:cacheprovider", "-ra", "--durations=10")
# the projects whose migration histories tests/test_real_histories.py runs,
# each in a venv of its own (prefect's and airflow's fastapi pins conflict);
# ckan ships its history with no required dependency (all in an extra)
HISTORIES = {
    "prefect": ("prefect==3.9.1",),
    "airflow": ("apache-airflow-core==3.3.2", "psycopg2-binary>=2.9"),
    "ckan": ("--no-deps", "ckan==2.12.0"),
}


def _floors() -> list[str]:
    """Runtime and ``postgresql`` requirements pinned at their declared floors."""
    project = PYPROJECT["project"]
    pins = []
    for spec in [
        *project["dependencies"],
        *project["optional-dependencies"]["postgresql"],
    ]:
        req = Requirement(spec)
        floor = next(s.version for s in req.specifier if s.operator == ">=")
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        pins.append(f"{req.name}{extras}=={floor}")
    return pins


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy", "types-tqdm", ".")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install(".", *DOCS_DEPS)
    if session.posargs[:1] == ["serve"]:  # nox -s docs -- serve [zensical serve args]
        session.run("zensical", "serve", *session.posargs[1:])
    else:  # into ./site; a broken link or anchor fails
        session.run("zensical", "build", "--strict", "--clean", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    # a real (non-editable) install: the wheel puts our templates into alembic/templates
    session.install(".[postgresql]", *TEST_DEPS)
    session.run(*PYTEST, "-m", "not history", *session.posargs)


@nox.session
@nox.parametrize("project", list(HISTORIES))
def histories(session: nox.Session, project: str) -> None:
    session.install(".[postgresql]", *TEST_DEPS)
    session.install(*HISTORIES[project])
    session.env["ALEMBIC_RECIPES_HISTORY"] = project
    # ckan's own pytest plugins need the rest of ckan (flask ...)
    plugins = ("-p", "no:ckan", "-p", "no:ckan_fixtures") if project == "ckan" else ()
    session.run(*PYTEST, *plugins, "-m", "history", "-k", project, *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    session.install(".[postgresql]", *TEST_DEPS, "coverage>=7.10", "pytest-cov>=6")
    session.run("coverage", "erase")
    session.run(
        *PYTEST, "-m", "not history", "--cov", "--cov-report=term", *session.posargs
    )


@nox.session
def tests_oldest(session: nox.Session) -> None:
    session.install(".[postgresql]", *TEST_DEPS, *_floors())
    session.run(
        "python",
        "-c",
        "import alembic, sqlalchemy; "
        "print('alembic', alembic.__version__, 'sqlalchemy', sqlalchemy.__version__)",
    )
    # the concurrency trials, our own logic (input checks, fleet orchestration)
    # and the third-party suites exercise our code, not the floors' API, and
    # the docs show what the newest releases print: run once, with the newest
    # releases (pyproject flavours need Alembic >= 1.16: tests_pyproject_oldest)
    skip = (
        "not (wheel or concurrency or orchestration or third_party or docs"
        " or pyproject or history)"
    )
    session.run(*PYTEST, "-m", skip, *session.posargs)


@nox.session
def tests_pyproject_oldest(session: nox.Session) -> None:
    session.install(".[postgresql]", *TEST_DEPS, f"alembic=={PYPROJECT_ALEMBIC}")
    session.run(*PYTEST, "-m", "pyproject", *session.posargs)
