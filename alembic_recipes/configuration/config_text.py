"""The option blocks of the templates' config files, written from the table.

The templates' ``alembic.ini.mako`` and ``pyproject.toml.mako`` call these
when ``alembic init`` renders them, so every generated config file shows each
option of :mod:`.option_table` with the same comment, default and spelling::

    <%! from alembic_recipes.configuration.config_text import ini_options %>
    [alembic]
    ${ini_options("data-flag", script_location)}
"""

from __future__ import annotations

import json

from .option_table import OPTIONS, TEMPLATE_NAMES, Option, options_for

__all__ = [
    "INI_LOGGING",
    "INI_POST_WRITE_HOOKS",
    "TOML_POST_WRITE_HOOKS",
    "ini_options",
    "reference_markdown",
    "toml_options",
]


def ini_options(
    template: str, script_location: str | None = None, *, only: str | None = None
) -> str:
    """The ``[alembic]`` options of *template*: Alembic's own (when
    *script_location* is given) and ours, each under its comment; *only*: the
    one option of that key."""
    return _block(template, "ini", script_location, only)


def toml_options(template: str, script_location: str) -> str:
    """The ``[tool.alembic]`` options of *template*'s pyproject flavour."""
    return _block(template, "toml", script_location, None)


def _block(
    template: str, fmt: str, script_location: str | None, only: str | None
) -> str:
    lines: list[str] = []
    for opt in options_for(template):
        if not _written(opt, fmt, script_location, only):
            continue
        help_lines = opt.help_for(template, fmt)
        if lines and help_lines and not opt.joined:
            lines.append("")
        lines += [f"# {line}".rstrip() for line in help_lines]
        lines.append(_assignment(opt, template, fmt, script_location))
    return "\n".join(lines) + "\n"


def _written(
    opt: Option, fmt: str, script_location: str | None, only: str | None
) -> bool:
    """Whether option *opt* is written in a *fmt* config file's block (*only*:
    that option alone; Alembic's own rows only where we write the whole file,
    with its *script_location*)."""
    if not opt.in_ini or (fmt == "toml" and opt.ini_only):
        return False
    if only is not None:
        return opt.key == only
    return not (opt.alembic and script_location is None)


def _assignment(
    opt: Option, template: str, fmt: str, script_location: str | None
) -> str:
    if opt.key == "script_location":
        value = str(script_location)
        return f"{opt.key} = {_toml(value, 'text') if fmt == 'toml' else value}"
    default = opt.default_for(template)
    if default is not None:
        shown = _toml(default, opt.kind) if fmt == "toml" else default
        return f"{opt.key} = {shown}"
    example = opt.example or ""
    if fmt == "toml":
        shown = opt.toml_example or _toml(example, opt.kind)
    else:
        shown = example
    return f"# {opt.key} = {shown}".rstrip()


def _toml(value: str, kind: str) -> str:
    """*value* as written in the ini, as a TOML value of its kind."""
    if kind in ("bool", "int"):
        return value
    if kind == "list":
        items = [item.strip() for item in value.split(",") if item.strip()]
        return "[" + ", ".join(json.dumps(item) for item in items) + "]"
    return json.dumps(value)


INI_POST_WRITE_HOOKS = """\
[post_write_hooks]
# New revision files are formatted with `ruff format` when ruff is installed
# (left as written, with a line saying so, when it is not).
hooks = format
format.type = alembic_recipes_ruff

# The safety lint (python -m alembic_recipes lint) on each new revision, as
# warnings: statements that would lock or rewrite a table the application uses.
# hooks = format, lint
# lint.type = alembic_recipes_lint
# lint.config = %(here)s/alembic.ini

# Alembic's own hook runners work too, e.g. black or `ruff check --fix`:
# hooks = black
# black.type = console_scripts
# black.entrypoint = black
# black.options = -l 79 REVISION_SCRIPT_FILENAME
#
# hooks = ruff
# ruff.type = module
# ruff.module = ruff
# ruff.options = check --fix REVISION_SCRIPT_FILENAME

"""
"""The ``[post_write_hooks]`` section: our ruff formatter, Alembic's runners."""

INI_LOGGING = """\
# Logging configuration, applied by env.py from the command line; in-process
# callers keep their loggers (config.attributes["configure_logger"] = False
# skips it).
[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""
"""The logging sections, as in Alembic's generic template."""

TOML_POST_WRITE_HOOKS = """\
# New revision files are formatted with `ruff format` when ruff is installed
# (left as written, with a line saying so, when it is not).
[[tool.alembic.post_write_hooks]]
name = "format"
type = "alembic_recipes_ruff"

# The safety lint (python -m alembic_recipes lint) on each new revision, as
# warnings: statements that would lock or rewrite a table the application uses.
# [[tool.alembic.post_write_hooks]]
# name = "lint"
# type = "alembic_recipes_lint"

# Alembic's own hook runners work too, e.g. `ruff check --fix`:
# [[tool.alembic.post_write_hooks]]
# name = "ruff"
# type = "module"
# module = "ruff"
# options = "check --fix REVISION_SCRIPT_FILENAME"
"""
"""``[[tool.alembic.post_write_hooks]]``: our ruff formatter, Alembic's runners."""


_INTRO = (
    "Every option is read, most specific first, from `-x KEY=VALUE`, then"
    " `config.attributes[KEY]`, then the `[alembic]` section of alembic.ini (or"
    " `[tool.alembic]` in pyproject.toml, same key).  A bad value fails the"
    " command with one `FAILED:` line before any SQL is sent, naming the value"
    " and what is accepted; so does an unknown `-x` key (see `x_keys`)."
)
_SECTIONS = (
    (
        "Options of every template",
        "The async-shared template reads only these; the others add their own below.",
    ),
    ("data-flag", "Revisions split into schema and data parts."),
    ("multidb-mixed", "Several databases in one environment."),
    ("multitenant", "Schema-per-tenant and database-per-tenant fleets."),
)
_HOOKS = (
    (
        "alembic_recipes_ruff",
        "Formats each new revision file with `ruff format`, using the project's ruff"
        " settings.  Where ruff is not installed it leaves the file as generated and"
        " prints a line saying so, instead of failing `alembic revision`.  The"
        " templates enable it as the hook `format`.  No options.",
    ),
    (
        "alembic_recipes_lint",
        "Lints each new revision file with `python -m alembic_recipes lint` and logs"
        " what it finds (statements that lock or rewrite a table the application"
        " uses) as warnings; it never fails `alembic revision`.  Option `config`:"
        " the ini file to read, by default `alembic.ini` in the current directory."
        "  The templates show it commented out as the hook `lint`.",
    ),
)


def reference_markdown() -> str:
    """The configuration reference, as Markdown: each option of the table once,
    as a heading and a definition list (keys, default, what it accepts), the
    options every template reads first, then each template's own; the
    post-write hook types; Alembic's own options."""
    out = [
        "# Configuration reference",
        "",
        "<!-- generated from alembic_recipes/configuration/option_table.py by"
        " `python -m alembic_recipes options`; do not edit -->",
        "",
        _INTRO,
        *_option_sections(),
        "",
        "## Post-write hook types",
        "",
        "Hook types for `[post_write_hooks]` in alembic.ini (`NAME.type = TYPE`) or"
        ' `[[tool.alembic.post_write_hooks]]` (`type = "TYPE"`), registered when'
        " alembic_recipes is imported.  Alembic's own types (`console_scripts`,"
        " `exec`, `module`) work beside them.",
    ]
    for name, text in _HOOKS:
        out += ["", f"### `{name}`", "", text]
    own = ", ".join(f"`{opt.key}`" for opt in OPTIONS if opt.alembic)
    out += [
        "",
        "## Alembic's own options",
        "",
        f"The generated files show Alembic's own options as its generic template"
        f" does, with the same meaning: {own}.  See [Alembic's"
        " documentation](https://alembic.sqlalchemy.org/en/latest/tutorial.html"
        "#editing-the-ini-file).",
    ]
    return "\n".join(out) + "\n"


def _option_sections() -> list[str]:
    """Our options: those every template reads first, then each template's."""
    ours = [opt for opt in OPTIONS if not opt.alembic]
    common = [opt for opt in ours if len(opt.templates) > 2]
    out: list[str] = []
    for title, lead in _SECTIONS:
        chosen = (
            [o for o in ours if o not in common and title in o.templates]
            if title in TEMPLATE_NAMES
            else common
        )
        out += ["", f"## {title}", "", lead]
        for opt in chosen:
            out += ["", *_reference_entry(opt)]
    return out


def _reference_entry(opt: Option) -> list[str]:
    where = []
    if opt.in_ini:
        where.append(
            f"`{opt.key}` in alembic.ini's `[alembic]`"
            if opt.ini_only
            else f"`{opt.key}` in `[alembic]` or `[tool.alembic]`"
        )
    if opt.x:
        where.append(f"`-x {opt.x}=…`")
    if opt.attribute:
        where.append(f'`config.attributes["{opt.attribute}"]`')
    entry = [f"### `{opt.key if opt.in_ini else opt.x}`", "", opt.reference, ""]
    entry += ["Set with", f":   {', '.join(where)}", ""]
    if len(opt.templates) < len(TEMPLATE_NAMES):
        entry += ["Templates", f":   {', '.join(sorted(opt.templates))}", ""]
    entry += ["Default", f":   {_reference_default(opt)}", ""]
    entry += ["Accepts", f":   {opt.accepted or 'text'}"]
    return entry


def _reference_default(opt: Option) -> str:
    if opt.doc_default:
        return f"`{opt.doc_default}`"
    if isinstance(opt.default, str):
        return f"`{opt.default}`"
    if opt.default:
        return "; ".join(f"`{value}` ({name})" for name, value in opt.default.items())
    return "`false`" if opt.kind == "bool" else "none"
