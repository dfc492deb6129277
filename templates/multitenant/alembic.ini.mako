# Alembic configuration: one schema or one database per tenant (multitenant).

[alembic]
# path to migration scripts
script_location = ${script_location}

# sys.path entry so env.py can import your application's models
prepend_sys_path = .
path_separator = os

# How tenants are kept apart:
#   database - one database per tenant; sqlalchemy.url is a template with {tenant}
#              (sqlite:///, sqlite+aiosqlite:///, postgresql+psycopg://.../app_{tenant},
#              postgresql+asyncpg://...)
#   schema   - one PostgreSQL database, one schema per tenant, each with its own
#              alembic_version; sqlalchemy.url is that database
#              (postgresql+psycopg:// or postgresql+asyncpg://)
tenant_strategy = database
sqlalchemy.url = sqlite:///%(here)s/tenants/{tenant}.db

# Known tenants, used by -x tenant=all (any combination; duplicates are merged):
# a list,
tenants = acme, globex
# a query returning one tenant name per row (against sqlalchemy.url for the
# schema strategy, or tenants_url),
# tenants_query = SELECT slug FROM public.tenants WHERE active ORDER BY slug
# tenants_url = postgresql+psycopg://user@localhost/app
# and/or the existing schemas (schema strategy) or databases/files (database
# strategy) whose tenant name matches a glob pattern.
# tenants_pattern = *

# Create a missing tenant schema/database instead of failing (-x create=true).
create_tenants = false

# Fleet runs stop at the first failing tenant; true goes on with the others
# (-x continue=true).  Either way each tenant has its own transaction.
continue_on_error = false

# Fast fleet upgrades (schema strategy): render each revision path once with
# Alembic's offline mode and replay the SQL per tenant (-x compiled=true).
# Only for migrations whose SQL does not depend on the tenant's data; a path
# that reads data cannot be rendered offline and runs the normal way.
compiled_upgrades = false

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
# column_order = id, *, created_at, updated_at

[post_write_hooks]
# New revision files are formatted with `ruff format` when ruff is installed.
hooks = format
format.type = alembic_recipes_ruff

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
