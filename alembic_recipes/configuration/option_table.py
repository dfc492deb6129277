"""Every option the templates read, in one table.

Each :class:`Option` names its ini key (``[alembic]``, and ``[tool.alembic]``
in the pyproject flavours), its ``-x`` and ``config.attributes`` keys, the
values it accepts, its default, and the comment the generated ini files show
above it.  From this table come the templates' option blocks
(:mod:`.config_text`), the "did you mean" warnings, the wording of a bad
value's error (:class:`~.options.InvalidOption`) and the documentation's configuration
reference -- so none of them can drift from the others.

Alembic's own options (``script_location``, ``file_template`` ...) are rows
too, marked ``alembic=True``: the templates show them as the stock ones do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DATA_TABLE",
    "OPTIONS",
    "TEMPLATE_NAMES",
    "Kind",
    "Option",
    "option",
    "options_for",
]

TEMPLATE_NAMES = ("async-shared", "data-flag", "multidb-mixed", "multitenant")
DATA_TABLE = "alembic_data_version"
"""The data-flag template's record of data parts run (``data_version_table``)."""
Kind = Literal["bool", "int", "seconds", "duration", "text", "list", "word", "url"]
_ALL = frozenset(TEMPLATE_NAMES)


@dataclass(frozen=True)
class Option:
    """One option: where it is read from, what it accepts, how it is shown."""

    key: str
    """Its key in ``[alembic]`` / ``[tool.alembic]``."""
    help: tuple[str, ...] | Mapping[str, tuple[str, ...]] = ()
    """The comment lines above it in the ini, or per template name."""
    default: str | Mapping[str, str] | None = None
    """As written in the generated ini (per template where they differ);
    None: shown commented out with :attr:`example`."""
    example: str | None = None
    kind: Kind = "text"
    accepted: str = ""
    """What a bad value's error says is expected; the reference shows it."""
    x: str | None = None
    """Its ``-x`` key (``-x data=true``); None: ini only."""
    templates: frozenset[str] = _ALL
    joined: bool = False
    """Written right under the option before it (no blank line)."""
    ini_only: bool = False
    """Not in ``[tool.alembic]`` (stays in the pyproject flavour's alembic.ini)."""
    alembic: bool = False
    """One of Alembic's own options."""
    in_ini: bool = True
    """Written in the generated ini (False: ``-x`` / attributes only)."""
    toml_help: tuple[str, ...] | None = None
    """The comment in ``[tool.alembic]``, where it differs from :attr:`help`."""
    toml_example: str | None = None
    """The TOML example, where it is not :attr:`example` quoted."""
    reference: str = ""
    """More for the configuration reference than the ini comment says."""
    low: int | None = None
    high: int | None = None
    """A whole number's bounds (``kind="int"``)."""
    doc_default: str | None = field(default=None, compare=False)
    """The default as the reference states it, where it is not :attr:`default`."""

    @property
    def attribute(self) -> str | None:
        """Its ``config.attributes`` key: the ``-x`` key, as
        :func:`~alembic_recipes.configuration.options.get_option` reads it."""
        return self.x

    def help_for(self, template: str, fmt: str = "ini") -> tuple[str, ...]:
        if fmt == "toml" and self.toml_help is not None:
            return self.toml_help
        if isinstance(self.help, Mapping):
            return self.help.get(template, ())
        return self.help

    def default_for(self, template: str) -> str | None:
        if isinstance(self.default, Mapping):
            return self.default.get(template)
        return self.default


_LOCK_HELP = {
    "async-shared": (
        "Writing commands (upgrade, downgrade, stamp) hold a migration lock on the",
        "database, so replicas that all run `alembic upgrade head` at start-up take",
        "turns: the others wait, then find the database at head.  PostgreSQL advisory",
        "lock, MySQL/MariaDB GET_LOCK, a lock file beside a SQLite file.",
    ),
    "multidb-mixed": (
        "Writing commands (upgrade, downgrade, stamp) hold a migration lock on every",
        "database (always in the order listed above), so replicas that all run"
        " `alembic",
        "upgrade head` at start-up take turns: the others wait, then find the"
        " databases",
        "at head.  PostgreSQL advisory lock, MySQL/MariaDB GET_LOCK, a lock file"
        " beside",
        "a SQLite file.",
    ),
    "multitenant": (
        "Writing commands (upgrade, downgrade, stamp) hold a migration lock per tenant",
        "(its schema or database), so replicas that all run `alembic upgrade head` at",
        "start-up take turns: the others wait, then find the tenant at head.",
        "PostgreSQL advisory lock, MySQL/MariaDB GET_LOCK, a lock file beside a SQLite",
        "file.",
    ),
}
_LOCK_HELP["data-flag"] = _LOCK_HELP["async-shared"]

_URL_HELP = (
    "Database URL, sync or async: sqlite:///, sqlite+aiosqlite:///,",
    "postgresql+psycopg://, postgresql+asyncpg://, mysql+pymysql://, ...",
)
BOOL = "one of true/yes/on/false/no/off/1/0 (case-insensitive)"
DURATION = "a duration such as 10s, 500ms, 2min, 1h or plain seconds"

OPTIONS: tuple[Option, ...] = (
    # -- Alembic's own ---------------------------------------------------------
    Option(
        "script_location",
        ("path to migration scripts",),
        alembic=True,
    ),
    Option(
        "prepend_sys_path",
        ("sys.path entry so env.py can import your application's models",),
        default=".",
        kind="list",
        alembic=True,
    ),
    Option("path_separator", default="os", alembic=True, ini_only=True),
    # older Alembic's name of path_separator, and [tool.alembic]'s hooks: known,
    # not written
    Option("version_path_separator", alembic=True, in_ini=False),
    Option("post_write_hooks", alembic=True, in_ini=False),
    Option(
        "file_template",
        (
            "-- Alembic's own options (as in Alembic's generic template) "
            "-----------------",
            "revision file names; the default is %%(rev)s_%%(slug)s.  Date-prefixed:",
        ),
        example="%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-"
        "%%(rev)s_%%(slug)s",
        alembic=True,
    ),
    Option(
        "timezone",
        (
            "timezone for the date in revision files and names (ZoneInfo name; needs",
            "tzdata, alembic[tz]); blank for local time",
        ),
        example="",
        alembic=True,
        joined=True,
    ),
    Option(
        "truncate_slug_length",
        ('max length of the "slug" part of file names',),
        example="40",
        kind="int",
        alembic=True,
        joined=True,
    ),
    Option(
        "revision_environment",
        ("run env.py during 'alembic revision' even without --autogenerate",),
        example="false",
        kind="bool",
        alembic=True,
        joined=True,
    ),
    Option(
        "sourceless",
        ("detect .pyc revision files without a .py source",),
        example="false",
        kind="bool",
        alembic=True,
        joined=True,
    ),
    Option(
        "version_locations",
        (
            "where revision files live (default <script_location>/versions), separated",
            "by path_separator",
        ),
        example="%(here)s/bar:%(here)s/bat:%(here)s/migrations/versions",
        kind="list",
        alembic=True,
        joined=True,
        toml_help=("where revision files live (default <script_location>/versions)",),
        toml_example='["%(here)s/bar", "%(here)s/bat", "%(here)s/migrations/versions"]',
    ),
    Option(
        "recursive_version_locations",
        ("search version_locations recursively",),
        example="false",
        kind="bool",
        alembic=True,
        joined=True,
    ),
    Option(
        "output_encoding",
        ("encoding of revision files written from script.py.mako",),
        example="utf-8",
        alembic=True,
        joined=True,
    ),
    # -- ours: the database, per template ---------------------------------------
    Option(
        "tenant_strategy",
        (
            "How tenants are kept apart:",
            "  database - one database per tenant; sqlalchemy.url is a template with"
            " {tenant}",
            "             (sqlite:///, sqlite+aiosqlite:///,"
            " postgresql+psycopg://.../app_{tenant},",
            "             postgresql+asyncpg://...)",
            "  schema   - one PostgreSQL database, one schema per tenant, each with"
            " its own",
            "             alembic_version; sqlalchemy.url is that database",
            "             (postgresql+psycopg:// or postgresql+asyncpg://)",
        ),
        default="database",
        kind="word",
        accepted="one of schema, database",
        x="tenant_strategy",
        templates=frozenset({"multitenant"}),
        reference=(
            "How tenants are kept apart. `database` (the default) gives each tenant"
            " its own database: `sqlalchemy.url` is a template with `{tenant}` in "
            "its database part, e.g. `sqlite:///%(here)s/tenants/{tenant}.db` or "
            "`postgresql+psycopg://app@db/app_{tenant}`. `schema` keeps every "
            "tenant in one PostgreSQL database, one schema per tenant, each with "
            "its own `alembic_version`; `sqlalchemy.url` then names that database."
        ),
    ),
    Option(
        "sqlalchemy.url",
        {"async-shared": _URL_HELP, "data-flag": _URL_HELP},
        default={
            "async-shared": "sqlite+aiosqlite:///%(here)s/app.db",
            "data-flag": "sqlite:///%(here)s/app.db",
            "multitenant": "sqlite:///%(here)s/tenants/{tenant}.db",
        },
        kind="url",
        accepted="a SQLAlchemy URL",
        templates=frozenset({"async-shared", "data-flag", "multitenant"}),
        ini_only=True,
        reference=(
            "The database URL, sync or async driver alike: `sqlite:///`, "
            "`sqlite+aiosqlite:///`, `postgresql+psycopg://`, "
            "`postgresql+asyncpg://`, `mysql+pymysql://` and any other SQLAlchemy "
            "URL. In the multitenant template with the database strategy it is a "
            "template with `{tenant}` in its database part. The multidb-mixed "
            "template reads one URL per database instead, from each database's own "
            "`[name]` section. Passwords are never printed: every URL in a log "
            "line, an error or `--sql` output is shown with the password hidden. "
            "`${NAME}` anywhere in a URL, in any section, is the environment "
            "variable NAME, e.g. `postgresql+psycopg://app:${DATABASE_PASSWORD}@db"
            "/app` with the password from a Kubernetes Secret; one that is not set"
            " fails the command, naming it."
        ),
    ),
    Option(
        "databases",
        (
            "The databases of this environment.  Each name gets a [name] section below",
            "with its sqlalchemy.url, and upgrade_<name>()/downgrade_<name>()"
            " functions in",
            "every revision, so names must be Python identifiers.",
        ),
        default="main, analytics",
        kind="list",
        accepted="Python identifiers, separated by commas or spaces",
        templates=frozenset({"multidb-mixed"}),
        reference=(
            "The databases of a multidb-mixed environment, in the order they are "
            "migrated and locked. Each name gets a `[name]` section in alembic.ini "
            "holding its `sqlalchemy.url`, and `upgrade_<name>()` / "
            "`downgrade_<name>()` functions in every revision, so a name must be a "
            "Python identifier."
        ),
    ),
    Option(
        "db",
        kind="list",
        accepted="names listed in databases",
        x="db",
        templates=frozenset({"multidb-mixed"}),
        in_ini=False,
        reference=(
            "The databases one command runs on, e.g. `-x db=analytics`; by default,"
            " all of them. A name that is not listed in `databases` is an error "
            "naming the accepted ones."
        ),
    ),
    Option(
        "two_phase",
        (
            "Commit with two-phase commit: every database prepares its transaction"
            " before",
            "any commits (PostgreSQL with max_prepared_transactions > 0, MySQL/MariaDB"
            " XA).",
        ),
        default="false",
        kind="bool",
        accepted=BOOL,
        x="two_phase",
        templates=frozenset({"multidb-mixed"}),
        reference=(
            "Commit the databases of one command with two-phase commit: every "
            "database prepares its transaction before any of them commits, so a "
            "failure at commit time leaves none of them half-migrated. It needs "
            "PostgreSQL with `max_prepared_transactions` above 0, or MySQL/MariaDB "
            "XA transactions."
        ),
    ),
    Option(
        "data_migrations",
        (
            "Run the data part of each revision (data_upgrades/data_downgrades)?",
            '-x data=true|false overrides this; code sets config.attributes["data"].',
            "Accepted: true/false, yes/no, on/off, 1/0.",
        ),
        default="false",
        kind="bool",
        accepted=BOOL,
        x="data",
        templates=frozenset({"data-flag"}),
        reference=(
            "Whether a command also runs the data part of each revision "
            "(`data_upgrades()` / `data_downgrades()`). `-x data=true` runs it for "
            'one command; code that calls Alembic sets `config.attributes["data"]`.'
        ),
    ),
    Option(
        "data_version_table",
        ("Table recording which revisions' data parts have run.",),
        example="alembic_data_version",
        accepted="a table name of 1 to 63 ASCII letters, digits or '_', not"
        " starting with a digit",
        templates=frozenset({"data-flag"}),
        doc_default=DATA_TABLE,
        reference=(
            "The table recording which revisions' data parts have run, beside "
            "`alembic_version`. It is created on first use."
        ),
    ),
    # -- multitenant ---------------------------------------------------------------
    Option(
        "tenant",
        accepted="a comma-separated list of names, shell-style patterns (t0*,"
        " acme-?) and all, each optionally after ! to exclude it; or shared",
        x="tenant",
        templates=frozenset({"multitenant"}),
        in_ini=False,
        reference=(
            "The tenants one command runs on: names (`-x tenant=acme,globex`), "
            "`all` for every known tenant, shell-style patterns over the known "
            "tenants (`-x tenant='t0*'`), and exclusions after `!` (`-x "
            "'tenant=all,!demo*'`). A pattern or exclusion that matches nothing is "
            "an error, and so is a name that is not a tenant unless `create` allows"
            " it. `-x tenant=shared` runs the shared scope alone. From code, "
            '`config.attributes["tenant"]` also takes a list of names. Without it a'
            " command fails and says how to select tenants."
        ),
    ),
    Option(
        "tenants",
        (
            "Known tenants, used by -x tenant=all (any combination; duplicates are"
            " merged):",
            "a list,",
        ),
        default="acme, globex",
        kind="list",
        accepted="tenant names",
        templates=frozenset({"multitenant"}),
        reference=(
            "The known tenants, as a list. `-x tenant=all` runs every known tenant:"
            " the union of this list, the rows of `tenants_query` and the schemas "
            "or databases that match `tenants_pattern`, with duplicates merged."
        ),
    ),
    Option(
        "tenants_query",
        (
            "a query returning one tenant name per row (against sqlalchemy.url for the",
            "schema strategy, or tenants_url),",
        ),
        example="SELECT slug FROM public.tenants WHERE active ORDER BY slug",
        templates=frozenset({"multitenant"}),
        joined=True,
        reference=(
            "A SQL query returning one tenant name per row, e.g. `SELECT slug FROM "
            "public.tenants WHERE active`. It runs against `sqlalchemy.url` with "
            "the schema strategy, or against `tenants_url`. With `servers`, it may "
            "return a second column naming each tenant's server."
        ),
    ),
    Option(
        "tenants_url",
        example="postgresql+psycopg://user@localhost/app",
        kind="url",
        accepted="a SQLAlchemy URL",
        templates=frozenset({"multitenant"}),
        joined=True,
        reference=(
            "Where `tenants_query` runs. By default it runs against "
            "`sqlalchemy.url`; with the database strategy, whose URL is a template,"
            " set it to the database that holds the tenant list."
        ),
    ),
    Option(
        "tenants_pattern",
        (
            "and/or the existing schemas (schema strategy) or databases/files"
            " (database",
            "strategy) whose tenant name matches a glob pattern.",
        ),
        example="*",
        templates=frozenset({"multitenant"}),
        joined=True,
        reference=(
            "A shell-style pattern, e.g. `t_*`: every existing schema (schema "
            "strategy) or database or SQLite file (database strategy) whose tenant "
            "name matches it is a known tenant. It combines with `tenants` and "
            "`tenants_query`."
        ),
    ),
    Option(
        "servers",
        (
            "Tenants on several servers (by region or size): name them here, and give",
            "each a [name] section below with its sqlalchemy.url (for the database",
            "strategy with {tenant} in its database part) and, optionally, its own",
            "tenants / tenants_pattern.  A tenants_query on tenants_url may then",
            "return two columns, tenant and server.  sqlalchemy.url above is unused.",
        ),
        example="eu1, us1",
        kind="list",
        accepted="server names (letters, digits, '_', '-'), separated by commas or"
        " spaces",
        templates=frozenset({"multitenant"}),
        reference=(
            "Tenants spread over several servers, by region or size. Name the "
            "servers here and give each a `[name]` section with its own "
            "`sqlalchemy.url` and, optionally, its own `tenants` or "
            "`tenants_pattern`; a `tenants_query` may return each tenant's server "
            "as a second column. One fleet command then migrates the tenants of "
            "every server: each tenant in its own transaction under its own lock, "
            "with one summary line and one run record per server. A server that "
            "cannot be reached fails its own tenants; with `continue_on_error` the "
            "other servers go on."
        ),
    ),
    Option(
        "server",
        kind="list",
        accepted="names listed in servers",
        x="server",
        templates=frozenset({"multitenant"}),
        in_ini=False,
        reference=(
            "With `servers`: the servers one command runs on, e.g. `-x server=eu`; "
            "by default, all of them. A new tenant that no server knows yet is "
            "created on the one server given."
        ),
    ),
    Option(
        "server_workers",
        (
            "With servers and fleet_workers > 1: at most this many workers (each one",
            "connection) on one server at a time (-x server_workers=N).",
        ),
        example="4",
        kind="int",
        low=0,
        high=256,
        accepted="a whole number of worker processes up to 256 (0: no cap)",
        x="server_workers",
        templates=frozenset({"multitenant"}),
        joined=True,
        doc_default="fleet_workers",
        reference=(
            "With `servers` and more than one worker: at most this many workers, "
            "each holding one connection, on one server at a time, so a large fleet"
            " does not exhaust one server's connections. 0 sets no cap; by default "
            "it is `fleet_workers`."
        ),
    ),
    Option(
        "shared_scope",
        (
            "Tables that exist once, beside the tenants' (plans, users, the tenant"
            " list):",
            "the shared scope, with its own version table, migrated once before the",
            "tenants in the same command (after them on downgrade); -x tenant=shared",
            "alone.  Its name: the shared schema (schema strategy, e.g. public), or"
            " what",
            "{tenant} becomes in sqlalchemy.url for the shared database (database",
            "strategy).  Revisions then get upgrade_shared()/downgrade_shared(), and",
            "env.py's shared_metadata is compared with it.",
        ),
        example="public",
        accepted="a tenant name",
        templates=frozenset({"multitenant"}),
        reference=(
            "Tables that exist once beside the tenants' own (plans, users, the "
            "tenant list) form the shared scope. It has its own version table and "
            "is migrated once, before the tenants in the same command (after them "
            "on downgrade); `-x tenant=shared` migrates it alone. Its value is the "
            "shared schema's name with the schema strategy (e.g. `public`), or what"
            " `{tenant}` becomes in `sqlalchemy.url` for the shared database with "
            "the database strategy. Revisions then get `upgrade_shared()` / "
            "`downgrade_shared()`, and autogenerate compares env.py's "
            "`shared_metadata` with it."
        ),
    ),
    Option(
        "extensions_schema",
        (
            "Schema strategy: where a tenant migration's CREATE EXTENSION puts the",
            "extension -- once for every tenant (IF NOT EXISTS), on each tenant's",
            "search_path after its own schema; DROP EXTENSION in a tenant's",
            "downgrade is skipped with a log line.  Default: the shared scope's",
            "schema, else public.",
        ),
        example="public",
        accepted="a schema name (1 to 63 characters)",
        templates=frozenset({"multitenant"}),
        reference=(
            "Schema strategy: the schema where a tenant migration's `CREATE "
            "EXTENSION` puts the extension. A database holds each extension once, "
            "so it is created once for every tenant (`IF NOT EXISTS`) in this "
            "schema, which is on each tenant's search_path after the tenant's own "
            "schema; a `WITH SCHEMA` written in the revision is kept. A `DROP "
            "EXTENSION` in one tenant's downgrade is skipped with a log line, since"
            " the other tenants still use it. By default it is the shared scope's "
            "schema, else `public`."
        ),
    ),
    Option(
        "create_tenants",
        (
            "Missing tenant schemas/databases (-x create=...):",
            "  known - create those listed above (tenants, tenants_query), fail for"
            " others",
            "  true  - create any tenant named on the command line too",
            "  false - never create; fail instead",
        ),
        default="known",
        kind="word",
        accepted=f"{BOOL} or 'known'",
        x="create",
        templates=frozenset({"multitenant"}),
        reference=(
            "What happens to a tenant whose schema or database does not exist yet. "
            "`known` (the default) creates the known tenants (`tenants`, "
            "`tenants_query`) and fails for any other name; `true` also creates a "
            "tenant named only on the command line (`-x tenant=newco -x "
            "create=true`); `false` never creates and fails instead. A created "
            "tenant that is not one of the known tenants is named in a warning with"
            " the line to add, since `-x tenant=all` would not migrate it."
        ),
    ),
    Option(
        "provision",
        (
            "How a missing tenant is made (-x provision=...): replay - run every",
            "revision into it; snapshot - copy the schema of the template tenant",
            "(provision_template, kept at head by the fleet) in one transaction, then",
            "run the revisions the template has not had yet.",
        ),
        default="replay",
        kind="word",
        accepted="one of replay, snapshot",
        x="provision",
        templates=frozenset({"multitenant"}),
        reference=(
            "How a tenant that does not exist yet is made. `replay` (the default) "
            "runs the whole history into it. `snapshot` copies the template tenant "
            "(`provision_template`) at head instead, in one transaction, so that a "
            "new tenant costs the same whatever the history's length: on "
            "PostgreSQL schemas, the template's DDL (`pg_dump --schema-only`, "
            "captured once per template revision and kept in the "
            "`alembic_recipes_snapshot` table) renamed to the new schema; a "
            "PostgreSQL database is made with `CREATE DATABASE ... TEMPLATE`, a "
            "SQLite file with the backup API, a MariaDB/MySQL database from the "
            "template's `SHOW CREATE` DDL. A template behind head is copied, then "
            "the revisions it lacks run as usual. See Provisioning tenants."
        ),
    ),
    Option(
        "provision_template",
        (
            "The tenant provision = snapshot copies; a fleet run (-x tenant=all)",
            "creates it and migrates it first.",
        ),
        default="_template",
        kind="text",
        accepted="a tenant name (" + "1 to 63 lower-case ASCII letters, digits,"
        " '_' or '-', starting with a letter or '_')",
        templates=frozenset({"multitenant"}),
        reference=(
            "The tenant that `provision = snapshot` copies. A fleet run "
            "(`-x tenant=all`) creates it when missing and migrates it before "
            "the other tenants; it holds no customer's data. Its name is "
            "checked like any tenant's."
        ),
    ),
    Option(
        "provision_seed",
        ("Tables of the template whose rows provision = snapshot copies too:",),
        example="plans, countries",
        kind="list",
        accepted="table names of the template, comma-separated",
        templates=frozenset({"multitenant"}),
        reference=(
            "Tables of the template whose rows `provision = snapshot` copies "
            "into a new tenant (seed rows revisions inserted), with their "
            "sequences' positions; other tables are created empty."
        ),
    ),
    Option(
        "provision_spares",
        (
            "Spare schemas at head provision = snapshot keeps ready (-x spares=...;",
            "schema strategy):",
            "a new tenant is then a rename.  A fleet run refills them, as does",
            "python -m alembic_recipes tenant spares.",
        ),
        default="0",
        kind="int",
        low=0,
        high=1000,
        accepted="a whole number of spare schemas from 0 to 1000",
        x="spares",
        templates=frozenset({"multitenant"}),
        reference=(
            "How many spare schemas `provision = snapshot` keeps made from the "
            "snapshot ahead of sign-ups (PostgreSQL, schema strategy). A new "
            "tenant then takes one with `ALTER SCHEMA ... RENAME`, about a "
            "millisecond whatever the history's length; with none left it is "
            "copied from the snapshot as usual. A fleet run refills them after "
            "migrating the template, dropping those of an older snapshot (older "
            "revisions, other seed tables); an "
            "application refills them with `fill_spares()` (after a sign-up, in "
            "the background) or `python -m alembic_recipes tenant spares`. Their "
            "names are the template's with `~` and a random suffix, listed in "
            "the `alembic_recipes_spare` table; no tenant selection takes them. "
            "0 (the default) keeps none and drops those left."
        ),
    ),
    Option(
        "new_tenant",
        kind="bool",
        accepted="true or false",
        x="new",
        templates=frozenset({"multitenant"}),
        in_ini=False,
        reference=(
            "`-x new=true` (what `provision_tenant()` sets): the named tenant must "
            "not exist yet. It is created, and a tenant that exists is an error "
            "naming it; two runs creating the same name take turns, and exactly "
            "one creates it."
        ),
    ),
    Option(
        "continue_on_error",
        (
            "Fleet runs stop at the first failing tenant; true goes on with the others",
            "(-x continue=true).  Either way each tenant has its own transaction.",
        ),
        default="false",
        kind="bool",
        accepted=BOOL,
        x="continue",
        templates=frozenset({"multitenant"}),
        reference=(
            "Whether a fleet run goes on after a tenant fails. By default it stops "
            "at the first failing tenant; with `true` it migrates the others and "
            "exits non-zero at the end. Either way each tenant has its own "
            "transaction, so a failed tenant is left at its previous revision."
        ),
    ),
    Option(
        "compiled_upgrades",
        (
            "Fleet upgrades to head (schema strategy) render each revision path once"
            " with",
            "Alembic's offline mode and replay that SQL per tenant, with one version"
            " write",
            "(-x compiled=...):",
            "  auto  - only where the SQL is provably the same for every tenant:"
            " rendered",
            "          twice identically (no uuid4()/now() computed in Python),"
            " reading no",
            "          data, no autocommit_block(); a path is split around the",
            "          revisions that are not: Alembic runs those per tenant",
            "  true  - every path that renders offline; Python-side values are shared",
            "  false - Alembic runs every tenant",
        ),
        default="auto",
        kind="word",
        accepted=f"{BOOL} or 'auto'",
        x="compiled",
        templates=frozenset({"multitenant"}),
        reference=(
            "How a fleet upgrades many schema-strategy tenants. With `auto` (the "
            "default) each revision path is rendered once with Alembic's offline "
            "mode and that SQL is replayed per tenant with one version write, but "
            "only where the SQL is provably the same for every tenant: rendered "
            "twice identically, reading no data, no `autocommit_block()`; Alembic "
            "runs the other revisions per tenant. `true` replays every path that "
            "renders offline, sharing values computed in Python (`uuid4()`, "
            "`now()`) between tenants. `false` has Alembic run every revision for "
            "every tenant."
        ),
    ),
    # -- every template ---------------------------------------------------------------
    Option(
        "migration_lock",
        _LOCK_HELP,
        default="true",
        kind="bool",
        accepted=BOOL,
        x="migration_lock",
        reference=(
            "Writing commands (`upgrade`, `downgrade`, `stamp`) hold a migration "
            "lock, so replicas that all run `alembic upgrade head` at start-up take"
            " turns: the others wait, then find the database at head and do "
            "nothing. The lock is a PostgreSQL advisory lock, a MySQL/MariaDB "
            "`GET_LOCK`, or a lock file beside a SQLite file. It is held on the "
            "database (async-shared, data-flag), on every database in the order "
            "`databases` lists them (multidb-mixed), or per tenant's schema or "
            "database (multitenant)."
        ),
    ),
    Option(
        "migration_lock_timeout",
        ("How long to wait for it before failing: 300s, 5min, 500ms, or seconds.",),
        default="300s",
        kind="seconds",
        accepted=f"{DURATION} greater than 0",
        x="migration_lock_timeout",
        joined=True,
        reference=(
            "How long a command waits for the migration lock before it fails, "
            "naming the session that holds it."
        ),
    ),
    Option(
        "lock_timeout",
        (
            "Beside a live application: a statement that waits longer than this for"
            " a lock",
            "(another session's open transaction) fails, instead of queueing every"
            " later",
            "query on that table behind it.  Set in every migration transaction:",
            "PostgreSQL SET LOCAL, MySQL/MariaDB lock_wait_timeout and",
            "innodb_lock_wait_timeout, SQLite's busy timeout.  0: the server's own.",
        ),
        default="10s",
        kind="duration",
        accepted=f"{DURATION}, or 0 for the server's own setting",
        x="lock_timeout",
        reference=(
            "How long a migration statement may wait for a table lock before it "
            "fails, instead of queueing every later query on that table behind it "
            "while another session's transaction is open. It is set in every "
            "migration transaction: PostgreSQL `SET LOCAL lock_timeout`, "
            "MySQL/MariaDB `lock_wait_timeout` and `innodb_lock_wait_timeout`, "
            "SQLite's busy timeout. 0 keeps the server's own setting."
        ),
    ),
    Option(
        "statement_timeout",
        (
            "A statement running longer fails (PostgreSQL statement_timeout, MariaDB",
            "max_statement_time, MySQL max_execution_time).  0: the server's own.",
        ),
        default="1h",
        kind="duration",
        accepted=f"{DURATION}, or 0 for the server's own setting",
        x="statement_timeout",
        joined=True,
        reference=(
            "How long one migration statement may run before it fails: PostgreSQL "
            "`statement_timeout`, MariaDB `max_statement_time`, MySQL "
            "`max_execution_time`. 0 keeps the server's own setting."
        ),
    ),
    Option(
        "lock_retries",
        (
            "After a lock timeout, run again this many times, pausing 0.5 s, 1 s, 2 s",
            "... (a fleet runs the tenant again after the others); then fail naming"
            " who",
            "held the lock.  Not on MySQL/MariaDB, whose DDL commits as it runs.",
        ),
        default="3",
        kind="int",
        low=0,
        high=100,
        accepted="a whole number of retries from 0 to 100",
        x="lock_retries",
        joined=True,
        reference=(
            "How many times a migration that met a lock timeout is run again, "
            "pausing 0.5 s, 1 s, 2 s and so on in between (a fleet runs that tenant"
            " again after the others). After the last try it fails naming the "
            "session that held the lock. There are no retries on MySQL/MariaDB, "
            "whose DDL commits statement by statement."
        ),
    ),
    Option(
        "shard",
        (
            "How the runners of one fleet command share its tenants (-x shard=...):",
            "  claim - any number of runners started with the same run id (-x run=ID)",
            "          claim tenants from the run's record, each migrated once; a",
            "          runner that dies loses its tenants to the others (claim_lease)",
            "  K/N   - a fixed slice: shard K of N by a hash of each name (auto: a",
            "          Kubernetes Indexed Job's JOB_COMPLETION_INDEX/JOB_COMPLETIONS)",
        ),
        example="claim",
        kind="text",
        accepted="claim, K/N with 0 <= K < N, or auto (a Kubernetes Indexed Job's"
        " JOB_COMPLETION_INDEX/JOB_COMPLETIONS)",
        x="shard",
        templates=frozenset({"multitenant"}),
        reference=(
            "How the runners of one fleet command share its tenants. `claim`: any "
            "number of runner processes (pods of a Job, processes on several "
            "machines) started with the same run id (`-x run=ID`) migrate one "
            "fleet together, each claiming the next tenant from the run's claims "
            "beside the run record, so each tenant is migrated once; a runner that "
            "dies loses its tenants to the others when its lease "
            "(`claim_lease`) runs out; tenants that join the catalog before the "
            "run is finished are picked up; a runner that starts after the run "
            "finished does nothing and says so; rollout waves hold across runners."
            " `K/N` with 0 <= K < N is a fixed slice instead: each tenant's name "
            "is hashed, so the N shards are disjoint and cover every tenant once, "
            "and adding a tenant moves no other; `auto` reads a Kubernetes Indexed"
            " Job's `JOB_COMPLETION_INDEX` and `JOB_COMPLETIONS`."
        ),
    ),
    Option(
        "run",
        (),
        example="migrate-1-4-2",
        accepted="a run id of 1 to 40 ASCII letters, digits, '.', '_' or '-'",
        x="run",
        in_ini=False,
        templates=frozenset({"multitenant"}),
        reference=(
            "With `shard = claim`: the id the runners of one run share, e.g. the "
            "Kubernetes Job's name (`-x run=$(JOB_NAME)`). A runner given an id "
            "whose run finished does nothing; a new deploy gives a new id."
        ),
    ),
    Option(
        "claim_lease",
        (
            "With shard = claim: how long a runner's claim on a tenant lasts unless",
            "renewed (it is, every third of it, while the runner works); a runner",
            "that died loses its tenants to the others after this long.",
        ),
        default="30s",
        kind="seconds",
        accepted=f"{DURATION} greater than 0",
        x="claim_lease",
        templates=frozenset({"multitenant"}),
        joined=True,
        reference=(
            "With `shard = claim`: how long a runner's claim on a tenant lasts "
            "unless renewed. A working runner renews it every third of this time "
            "from a thread of its own; a runner that was killed or lost its node "
            "stops renewing, and another runner takes its tenant over after at "
            "most this long. Leases are kept on the database's clock (PostgreSQL, "
            "MySQL/MariaDB), whatever the runners' machines' clocks say."
        ),
    ),
    Option(
        "rollout",
        (
            "Fleet runs in ordered waves, canary first (-x rollout=...): waves"
            " separated",
            "by ';', each tenant names/patterns, a percentage of the tenants not"
            " yet in",
            "a wave (written %% in this file), or rest.  A wave starts only when the",
            "one before it had at most max_failures failed tenants.",
        ),
        example="acme, beta; 10%%; rest",
        toml_example='"acme, beta; 10%; rest"',
        toml_help=(
            "Fleet runs in ordered waves, canary first (-x rollout=...): waves"
            " separated",
            "by ';', each tenant names/patterns, a percentage of the tenants not"
            " yet in",
            "a wave, or rest.  A wave starts only when the one before it had at most",
            "max_failures failed tenants.",
        ),
        accepted="waves separated by ';', each tenant names/patterns separated by"
        " ',', a percentage such as 10%, or rest (last)",
        x="rollout",
        templates=frozenset({"multitenant"}),
        reference=(
            "Run a fleet in ordered waves, canary first, e.g. `acme; 10%; rest`. "
            "Waves are separated by `;`; each is a list of tenant names or "
            "patterns, a percentage of the tenants not yet in a wave, or `rest` "
            "(last). A wave starts only when the one before it had at most "
            "`max_failures` failed tenants. In alembic.ini a percent sign is "
            "written `%%`."
        ),
    ),
    Option(
        "max_failures",
        ("Failed tenants a wave may have before the later waves are not run.",),
        default="0",
        kind="int",
        low=0,
        high=1_000_000,
        accepted="a whole number from 0",
        x="max_failures",
        joined=True,
        templates=frozenset({"multitenant"}),
        reference=(
            "How many tenants of one rollout wave may fail before the later waves "
            "are not run."
        ),
    ),
    Option(
        "progress",
        (
            "How a fleet run shows how far it is: auto - a live bar on a terminal,",
            "lines otherwise; bar; lines - a line per tenant (and Progress: lines);",
            "quiet - failures, warnings and the summary only.",
        ),
        default="auto",
        kind="word",
        accepted="one of auto, bar, lines, quiet",
        x="progress",
        templates=frozenset({"multitenant"}),
        reference=(
            "How a fleet run shows how far it is. `auto` (the default) draws a live"
            " bar on a terminal and logs lines otherwise; `bar` always draws the "
            "bar; `lines` logs a line per tenant and a `Progress:` line every "
            "`progress_interval`; `quiet` logs only failures, warnings and the "
            "summary."
        ),
    ),
    Option(
        "progress_interval",
        (
            "With progress = lines, a fleet run logs one Progress: line this often",
            "(done/total, failed, rate, ETA) beside its per-tenant lines; 0: none.",
        ),
        default="30s",
        kind="duration",
        accepted=f"{DURATION}, or 0 for none",
        x="progress_interval",
        templates=frozenset({"multitenant"}),
        reference=(
            "With `progress = lines`: how often a fleet run logs a `Progress:` line"
            " (tenants done of total, failed, rate, estimated time left) beside its"
            " per-tenant lines. 0 logs none."
        ),
    ),
    Option(
        "report",
        (),
        example="fleet-run.jsonl",
        accepted="a file path",
        x="report",
        in_ini=False,
        templates=frozenset({"multitenant"}),
        reference=(
            "A file to write the fleet run's record to, as JSON Lines: one object "
            "per tenant with its status, from and to revision, start time, duration"
            " and a failure's one-line cause, then one summary object."
        ),
    ),
    Option(
        "plan",
        (),
        example="true",
        kind="bool",
        accepted=BOOL,
        x="plan",
        in_ini=False,
        templates=frozenset({"multitenant"}),
        reference=(
            "With `upgrade`, `downgrade` or `stamp`: list the tenants the selection"
            " hits, each with its current revision and the revisions that would "
            "run, and change nothing."
        ),
    ),
    Option(
        "fleet_workers",
        (
            "Worker processes of a fleet run (-x workers=N): tenants are taken from"
            " one",
            "queue, each still in its own transaction under its own lock.",
        ),
        default="1",
        kind="int",
        low=1,
        high=256,
        accepted="a whole number of worker processes from 1 to 256",
        x="workers",
        templates=frozenset({"multitenant"}),
        reference=(
            "How many worker processes a fleet run uses (`-x workers=4`). Workers "
            "take tenants from one queue; each tenant still runs in its own "
            "transaction under its own lock."
        ),
    ),
    Option(
        "skip_empty_revisions",
        (
            "Autogenerate recipes (alembic-recipes); env.py combines them with yours.",
            "Write no revision file when nothing changed.",
        ),
        default="true",
        kind="bool",
        accepted=BOOL,
        x="skip_empty_revisions",
        reference=(
            "Autogenerate writes no revision file when it found nothing to change."
        ),
    ),
    Option(
        "skip_index_drops_of_dropped_tables",
        (
            "No DROP INDEX for a table the same migration drops (MySQL/MariaDB refuse"
            " it).",
        ),
        default="true",
        kind="bool",
        accepted=BOOL,
        x="skip_index_drops_of_dropped_tables",
        joined=True,
        reference=(
            "Autogenerate writes no `DROP INDEX` for the indexes of a table the "
            "same revision drops (MySQL/MariaDB refuse it, and dropping the table "
            "drops them anyway)."
        ),
    ),
    Option(
        "exclude_views",
        ('Tables with info={"is_view": True} are views: never created or dropped.',),
        default="true",
        kind="bool",
        accepted=BOOL,
        x="exclude_views",
        joined=True,
        reference=(
            'Autogenerate treats tables with `info={"is_view": True}` as views and '
            "never creates or drops them."
        ),
    ),
    Option(
        "keep_unknown_tables",
        ("Never DROP TABLE what the database has but the metadata does not know.",),
        default="false",
        kind="bool",
        accepted=BOOL,
        x="keep_unknown_tables",
        joined=True,
        reference=(
            "Autogenerate never writes `DROP TABLE` for a table the database has "
            "but the metadata does not know, e.g. tables another tool owns."
        ),
    ),
    Option(
        "target_schema",
        kind="text",
        accepted="a PostgreSQL schema name of 1 to 63 characters",
        x="target_schema",
        in_ini=False,
        reference=(
            "The PostgreSQL schema to migrate into, as alembic-gauntlet's tests set"
            ' it through `config.attributes["target_schema"]`. The schema is '
            "created if missing, put first on the search_path for the migration's "
            "transaction only (`SET LOCAL` on a caller's connection), holds "
            "`alembic_version` and has its own migration lock. In the multitenant "
            "template that schema is the one tenant migrated (on a caller's "
            "connection whatever `tenant_strategy` says); in the multidb-mixed "
            "template it applies in every selected database (name a shared "
            'connection\'s database with `config.attributes["db"]`). It works online'
            " only."
        ),
    ),
    Option(
        "column_order",
        ("Column order in generated CREATE TABLE; * stands for the other columns.",),
        example="id, *, created_at, updated_at",
        accepted="column names with exactly one '*' standing for the other columns",
        x="column_order",
        joined=True,
        reference=(
            "The column order autogenerate writes in `CREATE TABLE`, e.g. `id, *, "
            "created_at, updated_at`, where `*` stands for every other column in "
            "model order."
        ),
    ),
    Option(
        "x_keys",
        (
            "The -x keys your env.py reads itself (-x seed=42), comma-separated: any",
            "other -x key that is not an option of this environment is an error.",
        ),
        example="seed, region",
        kind="list",
        accepted="-x key names, separated by commas or spaces",
        reference=(
            "The `-x` keys your env.py reads itself, e.g. `seed` for `-x seed=42`. "
            "Any other `-x` key that is not an option of this environment is an "
            "error before any SQL, with the nearest known key suggested, so a "
            "misspelled `-x paln=true` never turns a dry run into a real one. One "
            "of ours given twice (`-x tenant=a -x tenant=b`) is an error too."
        ),
    ),
)

_BY_KEY = {opt.key: opt for opt in OPTIONS}


def option(key: str) -> Option:
    """The row of ini key *key* (a ``KeyError`` for an unknown one)."""
    return _BY_KEY[key]


def options_for(template: str, *, alembic: bool | None = None) -> Iterator[Option]:
    """The rows of template *template* (its base name), in table order;
    *alembic*: only Alembic's own (True) or only ours (False)."""
    base = template.removesuffix("-pyproject")
    for opt in OPTIONS:
        if base in opt.templates and (alembic is None or opt.alembic == alembic):
            yield opt
