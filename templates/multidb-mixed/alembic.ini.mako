<%! from alembic_recipes.configuration.config_text import INI_LOGGING, INI_POST_WRITE_HOOKS, ini_options %>\
# Alembic configuration: several databases, sync and async mixed (multidb-mixed).

[alembic]
${ini_options("multidb-mixed", script_location)}
# One section per database: sync or async URLs, in any mix (sqlite:///,
# sqlite+aiosqlite:///, postgresql+psycopg://, postgresql+asyncpg://,
# mysql+pymysql://, ...).
[main]
sqlalchemy.url = sqlite:///%(here)s/main.db

[analytics]
sqlalchemy.url = sqlite+aiosqlite:///%(here)s/analytics.db

${INI_POST_WRITE_HOOKS}${INI_LOGGING}\
