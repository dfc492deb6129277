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
    "OPTIONS",
    "TEMPLATE_NAMES",
    "Kind",
    "Option",
    "option",
    "options_for",
]

TEMPLATE_NAMES = ("async-shared", "data-flag", "multidb-mixed", "multitenant")
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
    doc_default: str | None = field(default=None, compare=False)
    """The default as the reference states it, where it is not :attr:`default`."""

    @property
    def attribute(self) -> str | None:
        """Its ``config.attributes`` key: the ``-x`` key, as
        :func:`~alembic_recipes.options.get_option` reads it."""
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
        reference="multitenant, database strategy: a template with {tenant} in its"
        " database part.  multidb-mixed: one [<name>] section per database holds it.",
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
    ),
    Option(
        "db",
        kind="list",
        accepted="names listed in databases",
        x="db",
        templates=frozenset({"multidb-mixed"}),
        in_ini=False,
        reference="The databases this command runs on (default: all).",
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
    ),
    Option(
        "data_version_table",
        ("Table recording which revisions' data parts have run.",),
        example="alembic_data_version",
        accepted="a table name of 1 to 63 ASCII letters, digits or '_', not"
        " starting with a digit",
        templates=frozenset({"data-flag"}),
        doc_default="alembic_data_version",
    ),
    # -- multitenant ---------------------------------------------------------------
    Option(
        "tenant",
        accepted="a comma-separated list of names, shell-style patterns (t0*,"
        " acme-?) and all, each optionally after ! to exclude it; or shared",
        x="tenant",
        templates=frozenset({"multitenant"}),
        in_ini=False,
        reference="The tenants this command runs on: -x tenant=acme,globex,"
        " -x tenant=all (every known tenant), patterns over the known tenants"
        " (-x tenant=t0*), exclusions (-x 'tenant=all,!demo*'; a pattern or"
        " exclusion matching nothing is an error), -x tenant=shared (the shared"
        " scope).  config.attributes['tenant'] also takes a list.",
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
    ),
    Option(
        "tenants_url",
        example="postgresql+psycopg://user@localhost/app",
        kind="url",
        accepted="a SQLAlchemy URL",
        templates=frozenset({"multitenant"}),
        joined=True,
        reference="Where tenants_query runs (default: sqlalchemy.url).",
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
        reference="One fleet command migrates the tenants of every server: each"
        " tenant in its own transaction under its own lock, workers spread over"
        " the servers (server_workers per server), one summary line and one run"
        " record per server.  A server that cannot be reached fails its own"
        " tenants; with continue_on_error the other servers go on.",
    ),
    Option(
        "server",
        kind="list",
        accepted="names listed in servers",
        x="server",
        templates=frozenset({"multitenant"}),
        in_ini=False,
        reference="With servers: the servers this command runs on (default: all);"
        " a tenant known on no server is created on the one server given.",
    ),
    Option(
        "server_workers",
        (
            "With servers and fleet_workers > 1: at most this many workers (each one",
            "connection) on one server at a time (-x server_workers=N).",
        ),
        example="4",
        kind="int",
        accepted="a whole number of worker processes up to 256 (0: no cap)",
        x="server_workers",
        templates=frozenset({"multitenant"}),
        joined=True,
        doc_default="fleet_workers",
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
            "A database has each extension once, in one schema: created inside the"
            " first tenant's schema (its search_path), the second tenant's"
            " `CREATE EXTENSION IF NOT EXISTS` finds it and creates nothing, and"
            " that tenant's use of it (`gin_trgm_ops`) fails. So the statement gets"
            " `SCHEMA <extensions_schema>` when it names none, and every tenant"
            " sees that schema through its search_path. A `WITH SCHEMA` written in"
            " the revision is kept."
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
    ),
    # -- every template ---------------------------------------------------------------
    Option(
        "migration_lock",
        _LOCK_HELP,
        default="true",
        kind="bool",
        accepted=BOOL,
        x="migration_lock",
    ),
    Option(
        "migration_lock_timeout",
        ("How long to wait for it before failing: 300s, 5min, 500ms, or seconds.",),
        default="300s",
        kind="seconds",
        accepted=f"{DURATION} greater than 0",
        x="migration_lock_timeout",
        joined=True,
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
        accepted="a whole number of retries from 0 to 100",
        x="lock_retries",
        joined=True,
    ),
    Option(
        "shard",
        (),
        example="0/4",
        kind="text",
        accepted="K/N with 0 <= K < N (a Kubernetes Indexed Job's"
        " JOB_COMPLETION_INDEX/JOB_COMPLETIONS), or auto to read those",
        x="shard",
        in_ini=False,
        templates=frozenset({"multitenant"}),
        reference="This run's stable slice of the selected tenants: a hash of"
        " each name, so the N shards are disjoint, cover every tenant once, and"
        " adding a tenant moves no other.",
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
    ),
    Option(
        "max_failures",
        ("Failed tenants a wave may have before the later waves are not run.",),
        default="0",
        kind="int",
        accepted="a whole number from 0",
        x="max_failures",
        joined=True,
        templates=frozenset({"multitenant"}),
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
    ),
    Option(
        "report",
        (),
        example="fleet-run.jsonl",
        accepted="a file path",
        x="report",
        in_ini=False,
        templates=frozenset({"multitenant"}),
        reference="Write the fleet run's record as JSON Lines: per tenant its"
        " status, from and to revision, start time, duration and a failure's"
        " one-line cause, then one summary object.",
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
        reference="With upgrade, downgrade or stamp: list the tenants the selection"
        " hits, each with its current revision and what would run; change nothing.",
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
        accepted="a whole number of worker processes from 1 to 256",
        x="workers",
        templates=frozenset({"multitenant"}),
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
    ),
    Option(
        "exclude_views",
        ('Tables with info={"is_view": True} are views: never created or dropped.',),
        default="true",
        kind="bool",
        accepted=BOOL,
        x="exclude_views",
        joined=True,
    ),
    Option(
        "keep_unknown_tables",
        ("Never DROP TABLE what the database has but the metadata does not know.",),
        default="false",
        kind="bool",
        accepted=BOOL,
        x="keep_unknown_tables",
        joined=True,
    ),
    Option(
        "target_schema",
        kind="text",
        accepted="a PostgreSQL schema name of 1 to 63 characters",
        x="target_schema",
        in_ini=False,
        reference=(
            "The PostgreSQL schema to migrate into, as alembic-gauntlet's tests set"
            ' it (`config.attributes["target_schema"]`): created if missing, first'
            " on the search_path for the migration's transaction only (`SET LOCAL`"
            " on a caller's connection), and holding `alembic_version`.  Its own"
            " migration lock.  multitenant: that schema is the one tenant migrated;"
            " on a caller's connection whatever `tenant_strategy` says.  multidb-mixed:"
            " in every selected database (one shared connection: name its database"
            ' with `config.attributes["db"]`).  Online only.'
        ),
    ),
    Option(
        "column_order",
        ("Column order in generated CREATE TABLE; * stands for the other columns.",),
        example="id, *, created_at, updated_at",
        accepted="column names with exactly one '*' standing for the other columns",
        x="column_order",
        joined=True,
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
        reference="A misspelled `-x` key (`-x paln=true`) fails before any SQL"
        " with the nearest known key suggested, so a dry run never becomes a real"
        " one; keys your env.py reads itself (through `get_option` or"
        " `context.get_x_argument()`) are listed here and then accepted.  One of"
        " ours given twice (`-x tenant=a -x tenant=b`) fails too.",
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
