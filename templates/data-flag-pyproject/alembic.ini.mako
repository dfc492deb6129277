# A multi-purpose Alembic configuration: schema and data migrations (data-flag).
# The other options are in pyproject.toml, [tool.alembic].

[alembic]
# Database URL, sync or async: sqlite:///, sqlite+aiosqlite:///,
# postgresql+psycopg://, postgresql+asyncpg://, mysql+pymysql://, ...
sqlalchemy.url = sqlite:///%(here)s/app.db

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
