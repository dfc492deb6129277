"""``python -m alembic_recipes``: our templates where ``alembic`` cannot see them.

Wheels install the templates beside Alembic's own, so ``alembic list_templates``
and ``alembic init -t NAME`` work.  Editable installs, or an ``alembic`` living
in another site directory, do not see them; this entry point hands Alembic the
template's absolute path instead::

    python -m alembic_recipes list
    python -m alembic_recipes init data-flag ./migrations [alembic init options]

It also prints the tables of an existing database as Alembic code, for the
first revision of a project adopting that database::

    python -m alembic_recipes render-tables URL [TABLE ...] [--schema NAME]

the configuration reference of every template, as Markdown::

    python -m alembic_recipes options

a multitenant environment's tenants made, dropped and renamed, and its spare
schemas made (:mod:`alembic_recipes.tenants.lifecycle`,
:mod:`~alembic_recipes.tenants.dropping`)::

    python -m alembic_recipes tenant provision NAME [-c alembic.ini]
    python -m alembic_recipes tenant spares [-c alembic.ini]
    python -m alembic_recipes tenant drop NAME --confirm NAME [-c alembic.ini]
    python -m alembic_recipes tenant rename NAME NEW --confirm NAME [-c alembic.ini]

and the safety lint of an environment's revisions, one revision at a time
(:mod:`alembic_recipes.lint`)::

    python -m alembic_recipes lint [-c alembic.ini] [-x KEY=VALUE] [RANGE]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.config import main as alembic_main
from alembic.util import CommandError

from .configuration.config_text import reference_markdown
from .templates import (
    PYPROJECT,
    SHARED_FILES,
    TEMPLATES,
    alembic_template_dir,
    template_path,
    visible_to_alembic,
)

USAGE = (
    "usage: python -m alembic_recipes list\n"
    "       python -m alembic_recipes init NAME DIRECTORY [alembic init options]\n"
    "       python -m alembic_recipes render-tables URL [TABLE ...] [--schema NAME]\n"
    "       python -m alembic_recipes options\n"
    "       python -m alembic_recipes lint [-c INI] [-n SECTION] [-x KEY=VALUE]"
    " [--no-squawk] [--squawk-include RULE] [RANGE]\n"
    "       python -m alembic_recipes tenant provision|drop|rename NAME [NEW]"
    " [--confirm NAME] [-c INI] [-n SECTION] [-x KEY=VALUE]\n"
    "       python -m alembic_recipes tenant spares [-c INI] [-n SECTION]"
    " [-x KEY=VALUE]"
)


def _synopsis(name: str) -> str:
    with (template_path(name) / "README").open() as readme:
        return readme.readline().strip()


def list_templates() -> int:
    """Print every template with its synopsis and whether ``alembic`` sees it."""
    hidden = []
    for name in TEMPLATES:
        print(f"{name} - {_synopsis(name)}")
        if not visible_to_alembic(name):
            hidden.append(name)
    if hidden:
        print(
            f"\nnot visible to `alembic list_templates` (looked in"
            f" {alembic_template_dir()}): {', '.join(hidden)}.\n"
            "Use `python -m alembic_recipes init NAME DIR`, or install"
            " alembic-recipes from a wheel into the environment of that alembic."
        )
    return 0


def init(name: str, directory: str, extra: Sequence[str]) -> int:
    """Run ``alembic init`` with the absolute path of template *name*."""
    try:
        path = template_path(name)
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    global_opts, init_opts = _split_options(extra)
    with _complete(name, path) as complete:
        alembic_main(
            [*global_opts, "init", *init_opts, "--template", str(complete), directory]
        )
    return 0


@contextmanager
def _complete(name: str, path: Path) -> Iterator[Path]:
    """*path*, or, for a source tree's ``-pyproject`` flavour (which holds only
    its config files), a temporary copy completed with its base's files."""
    if all((path / f).is_file() for f in SHARED_FILES):
        yield path
        return
    base = template_path(name.removesuffix(PYPROJECT))
    with tempfile.TemporaryDirectory() as tmp:
        complete = Path(tmp) / name
        shutil.copytree(path, complete)
        for shared in SHARED_FILES:
            shutil.copy(base / shared, complete / shared)
        yield complete


_GLOBAL_WITH_VALUE = ("-c", "--config", "-n", "--name", "--toml-file")


def _split_options(extra: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split options into Alembic's global ones (``-c``, ``-n``) and ``init``'s."""
    global_opts: list[str] = []
    init_opts: list[str] = []
    items = iter(extra)
    for item in items:
        if item in _GLOBAL_WITH_VALUE:
            global_opts += [item, next(items, "")]
        elif item.split("=", 1)[0] in _GLOBAL_WITH_VALUE:
            global_opts.append(item)
        else:
            init_opts.append(item)
    return global_opts, init_opts


def render_tables(url: str, tables: Sequence[str], schema: str | None) -> int:
    """Print ``upgrade()`` / ``downgrade()`` creating the tables of URL."""
    from .metadata.tables import render_tables_from_url

    try:
        print(render_tables_from_url(url, list(tables), schema=schema), end="")
    except CommandError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 255
    return 0


def _parser() -> argparse.ArgumentParser:
    prog = "python -m alembic_recipes"
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=USAGE.removeprefix("usage: "),
        description="alembic-recipes templates and helpers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "list", prog=f"{prog} list", help="the templates; does alembic see them?"
    )
    init_cmd = commands.add_parser(
        "init", prog=f"{prog} init", help="alembic init with one of our templates"
    )
    init_cmd.add_argument("name", metavar="NAME", help="the template")
    init_cmd.add_argument("directory", metavar="DIRECTORY")
    init_cmd.add_argument(
        "extra",
        nargs=argparse.REMAINDER,
        help="alembic's options (-c, -n, --package ...)",
    )
    tables = commands.add_parser(
        "render-tables",
        prog=f"{prog} render-tables",
        help="existing tables as op.create_table() code",
    )
    tables.add_argument("url", metavar="URL", help="the database (password allowed)")
    tables.add_argument(
        "tables", metavar="TABLE", nargs="*", default=[], help="default: every table"
    )
    tables.add_argument("--schema", "-s", metavar="NAME", help="schema to read")
    commands.add_parser(
        "options",
        prog=f"{prog} options",
        help="the configuration reference of every template (Markdown)",
    )
    lint = commands.add_parser(
        "lint",
        prog=f"{prog} lint",
        help="revisions that would lock or rewrite tables a live application uses",
    )
    lint.add_argument(
        "revisions",
        metavar="RANGE",
        nargs="?",
        help="A:B (after A, up to B), base:head, or one revision; default: those"
        " not yet applied to the database (-x tenant=NAME: to that tenant), or all",
    )
    _config_arguments(lint)
    lint.add_argument("--dialect", help="rules of this dialect (default: the URL's)")
    lint.add_argument("--no-squawk", action="store_true", help="built-in rules only")
    lint.add_argument(
        "--squawk-include",
        action="append",
        default=[],
        metavar="RULE",
        help="turn on one of squawk's style rules (off by default)",
    )
    tenant = commands.add_parser(
        "tenant",
        prog=f"{prog} tenant",
        help="make a tenant at head, drop or rename one, make spare schemas"
        " (multitenant)",
    )
    tenant.add_argument("action", choices=("provision", "drop", "rename", "spares"))
    tenant.add_argument("name", metavar="NAME", nargs="?")
    tenant.add_argument("new", metavar="NEW", nargs="?", help="rename: its new name")
    tenant.add_argument(
        "--confirm", metavar="NAME", help="drop, rename: the tenant's name again"
    )
    _config_arguments(tenant)
    return parser


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default="alembic.ini", metavar="INI")
    parser.add_argument(
        "-n", "--name", dest="section", default="alembic", metavar="SECTION"
    )
    parser.add_argument(
        "-x", action="append", default=[], metavar="KEY=VALUE", help="as for alembic"
    )


def _config(args: argparse.Namespace) -> Config | None:
    """The Alembic config of ``-c``/``-n``/``-x`` (with ``[tool.alembic]`` of
    a pyproject.toml beside it); None after saying that the file is missing."""
    if not Path(args.config).is_file():
        print(f"FAILED: no config file {args.config!r}", file=sys.stderr)
        return None
    toml = Path(args.config).with_name("pyproject.toml")
    extra = {"toml_file": str(toml)} if toml.is_file() else {}
    opts = argparse.Namespace(x=args.x)
    try:
        return Config(args.config, ini_section=args.section, cmd_opts=opts, **extra)  # type: ignore[arg-type]
    except TypeError:  # Alembic < 1.16: no [tool.alembic]
        return Config(args.config, ini_section=args.section, cmd_opts=opts)


def run_tenant(args: argparse.Namespace) -> int:
    """``tenant provision|drop|rename|spares``: 0, or 255 with one ``FAILED:``
    line."""
    from .logs import configure_logging
    from .tenants import drop_tenant, fill_spares, provision_tenant, rename_tenant

    config = _config(args)
    if config is None:
        return 255
    configure_logging(config)
    try:
        if args.action == "spares":
            made = fill_spares(None, config=config)
            print(f"{made} spare schema{'' if made == 1 else 's'} made")
            return 0
        if args.name is None:
            raise CommandError(f"tenant {args.action}: give the tenant's name")
        if args.action == "provision":
            provision_tenant(None, args.name, config=config)
        elif args.action == "drop":
            drop_tenant(None, args.name, config=config, confirm=args.confirm)
        elif args.new is None:
            raise CommandError("tenant rename: give the new name: rename NAME NEW")
        else:
            rename_tenant(
                None, args.name, args.new, config=config, confirm=args.confirm
            )
    except CommandError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 255
    return 0


def run_lint(args: argparse.Namespace) -> int:
    """Print each problem; 1 when there is one, 0 when none, 255 on failure."""
    from .lint import lint, pending_range

    config = _config(args)
    if config is None:
        return 255
    revisions = args.revisions
    if revisions is None:
        revisions, why = pending_range(config)
        print(f"lint: revisions {revisions} ({why})", file=sys.stderr)
    try:
        problems = lint(
            config,
            revisions,
            squawk=not args.no_squawk,
            include=args.squawk_include,
            dialect=args.dialect,
        )
    except CommandError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 255
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m alembic_recipes``; returns the exit status
    (2 for a usage error, as argparse has it)."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse printed the usage and the error
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "list":
        return list_templates()
    if args.command == "init":
        return init(args.name, args.directory, args.extra)
    if args.command == "options":
        print(reference_markdown(), end="")
        return 0
    if args.command == "lint":
        return run_lint(args)
    if args.command == "tenant":
        return run_tenant(args)
    return render_tables(args.url, args.tables, args.schema)


if __name__ == "__main__":
    sys.exit(main())
