"""Where our templates live, and whether the ``alembic`` command can see them."""

from __future__ import annotations

from pathlib import Path

import alembic

from .configuration.option_table import TEMPLATE_NAMES

__all__ = [
    "SHARED_FILES",
    "TEMPLATES",
    "alembic_template_dir",
    "template_path",
    "visible_to_alembic",
]

PYPROJECT = "-pyproject"
TEMPLATES = tuple(
    name for base in TEMPLATE_NAMES for name in (base, f"{base}{PYPROJECT}")
)
"""Template names shipped by this package (``templates/<name>/`` in the source).
A ``<name>-pyproject`` flavour keeps its options in pyproject.toml's
``[tool.alembic]`` (Alembic >= 1.16) and shares ``<name>``'s env.py and
script.py.mako (the wheel copies them in)."""
SHARED_FILES = ("env.py", "script.py.mako")

_HERE = Path(__file__).resolve().parent.parent
# Where else a template can be: the wheel's alembic/templates beside this package
# (when Alembic itself is installed in another site directory), and the source
# tree's templates/ (editable installs).
_FALLBACK_DIRS = (_HERE / "alembic" / "templates", _HERE / "templates")


def alembic_template_dir() -> Path:
    """The directory ``alembic init -t NAME`` and ``alembic list_templates`` read."""
    return Path(alembic.__file__).resolve().parent / "templates"


def template_path(name: str) -> Path:
    """Absolute path of template *name*: beside Alembic's, else the source tree."""
    if name not in TEMPLATES:
        raise LookupError(
            f"unknown template {name!r}: expected one of {', '.join(TEMPLATES)}"
        )
    for base in (alembic_template_dir(), *_FALLBACK_DIRS):
        candidate = base / name
        if (candidate / "README").is_file():
            return candidate
    raise FileNotFoundError(
        f"template {name!r} is not installed: reinstall alembic-recipes"
    )


def visible_to_alembic(name: str) -> bool:
    """True when plain ``alembic init -t NAME`` finds template *name*."""
    return (alembic_template_dir() / name / "README").is_file()
