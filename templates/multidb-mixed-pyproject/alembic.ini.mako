<%! from alembic_recipes.configuration.config_text import INI_LOGGING %>\
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

${INI_LOGGING}\
