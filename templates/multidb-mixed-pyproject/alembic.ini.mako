# Alembic configuration: several databases, sync and async mixed (multidb-mixed).
# The other options are in pyproject.toml, [tool.alembic].

[alembic]


# One section per database: sync or async URLs, in any mix (sqlite:///,
# sqlite+aiosqlite:///, postgresql+psycopg://, postgresql+asyncpg://,
# mysql+pymysql://, ...).
[main]
sqlalchemy.url = sqlite:///%(here)s/main.db

[analytics]
sqlalchemy.url = sqlite+aiosqlite:///%(here)s/analytics.db

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
