# alembic-recipes: Alembic configuration: several databases, sync and async mixed (multidb-mixed)
# The environment's options; alembic.ini keeps the database URL and logging.
[tool.alembic]
# path to migration scripts
script_location = "${script_location}"

# sys.path entry so env.py can import your application's models
prepend_sys_path = ["."]

# -- Alembic's own options (as in Alembic's generic template) -----------------
# revision file names; the default is %%(rev)s_%%(slug)s.  Date-prefixed:
# file_template = "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"
# timezone for the date in revision files and names (ZoneInfo name; needs
# tzdata, alembic[tz]); blank for local time
# timezone = ""
# max length of the "slug" part of file names
# truncate_slug_length = 40
# run env.py during 'alembic revision' even without --autogenerate
# revision_environment = false
# detect .pyc revision files without a .py source
# sourceless = false
# where revision files live (default <script_location>/versions)
# version_locations = ["%(here)s/bar", "%(here)s/bat", "%(here)s/migrations/versions"]
# search version_locations recursively
# recursive_version_locations = false
# encoding of revision files written from script.py.mako
# output_encoding = "utf-8"

# The databases of this environment.  Each name gets a [name] section below
# with its sqlalchemy.url, and upgrade_<name>()/downgrade_<name>() functions in
# every revision, so names must be Python identifiers.
databases = ["main", "analytics"]

# Commit with two-phase commit: every database prepares its transaction before
# any commits (PostgreSQL with max_prepared_transactions > 0, MySQL/MariaDB XA).
two_phase = false

# Writing commands (upgrade, downgrade, stamp) hold a migration lock on every
# database (always in the order listed above), so replicas that all run `alembic
# upgrade head` at start-up take turns: the others wait, then find the databases
# at head.  PostgreSQL advisory lock, MySQL/MariaDB GET_LOCK, a lock file beside
# a SQLite file.
migration_lock = true
# Seconds to wait for it before failing (-x lock_timeout=SECONDS).
migration_lock_timeout = 300

# Autogenerate recipes (alembic-recipes); env.py combines them with yours.
# Write no revision file when nothing changed.
skip_empty_revisions = true
# No DROP INDEX for a table the same migration drops (MySQL/MariaDB refuse it).
skip_index_drops_of_dropped_tables = true
# Tables with info={"is_view": True} are views: never created or dropped.
exclude_views = true
# Never DROP TABLE what the database has but the metadata does not know.
keep_unknown_tables = false
# Column order in generated CREATE TABLE; * stands for the other columns.
# column_order = "id, *, created_at, updated_at"

# New revision files are formatted with `ruff format` when ruff is installed
# (silently left as written when it is not).
[[tool.alembic.post_write_hooks]]
name = "format"
type = "alembic_recipes_ruff"

# Alembic's own hook runners work too, e.g. `ruff check --fix`:
# [[tool.alembic.post_write_hooks]]
# name = "ruff"
# type = "module"
# module = "ruff"
# options = "check --fix REVISION_SCRIPT_FILENAME"
