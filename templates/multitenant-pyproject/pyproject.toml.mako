# alembic-recipes: Alembic configuration: one schema or one database per tenant (multitenant)
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

# How tenants are kept apart:
#   database - one database per tenant; sqlalchemy.url is a template with {tenant}
#              (sqlite:///, sqlite+aiosqlite:///, postgresql+psycopg://.../app_{tenant},
#              postgresql+asyncpg://...)
#   schema   - one PostgreSQL database, one schema per tenant, each with its own
#              alembic_version; sqlalchemy.url is that database
#              (postgresql+psycopg:// or postgresql+asyncpg://)
tenant_strategy = "database"

# Known tenants, used by -x tenant=all (any combination; duplicates are merged):
# a list,
tenants = ["acme", "globex"]
# a query returning one tenant name per row (against sqlalchemy.url for the
# schema strategy, or tenants_url),
# tenants_query = "SELECT slug FROM public.tenants WHERE active ORDER BY slug"
# tenants_url = "postgresql+psycopg://user@localhost/app"
# and/or the existing schemas (schema strategy) or databases/files (database
# strategy) whose tenant name matches a glob pattern.
# tenants_pattern = "*"

# Tables that exist once, beside the tenants' (plans, users, the tenant list):
# the shared scope, with its own version table, migrated once before the
# tenants in the same command (after them on downgrade); -x tenant=shared
# alone.  Its name: the shared schema (schema strategy, e.g. public), or what
# {tenant} becomes in sqlalchemy.url for the shared database (database
# strategy).  Revisions then get upgrade_shared()/downgrade_shared(), and
# env.py's shared_metadata is compared with it.
# shared_scope = "public"

# Missing tenant schemas/databases (-x create=...):
#   known - create those listed above (tenants, tenants_query), fail for others
#   true  - create any tenant named on the command line too
#   false - never create; fail instead
create_tenants = "known"

# Fleet runs stop at the first failing tenant; true goes on with the others
# (-x continue=true).  Either way each tenant has its own transaction.
continue_on_error = false

# Fleet upgrades to head (schema strategy) render each revision path once with
# Alembic's offline mode and replay that SQL per tenant, with one version write
# (-x compiled=...):
#   auto  - only where the SQL is provably the same for every tenant: rendered
#           twice identically (no uuid4()/now() computed in Python), reading no
#           data, no autocommit_block(); other paths run Alembic per tenant
#   true  - every path that renders offline; Python-side values are shared
#   false - Alembic runs every tenant
compiled_upgrades = "auto"

# Writing commands (upgrade, downgrade, stamp) hold a migration lock per tenant
# (its schema or database), so replicas that all run `alembic upgrade head` at
# start-up take turns: the others wait, then find the tenant at head.
# PostgreSQL advisory lock, MySQL/MariaDB GET_LOCK, a lock file beside a SQLite
# file.
migration_lock = true
# Seconds to wait for it before failing (-x lock_timeout=SECONDS).
migration_lock_timeout = 300

# Worker processes of a fleet run (-x workers=N): tenants are taken from one
# queue, each still in its own transaction under its own lock.
fleet_workers = 1

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
