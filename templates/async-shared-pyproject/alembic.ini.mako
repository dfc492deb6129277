<%! from alembic_recipes.configuration.config_text import INI_LOGGING, ini_options %>\
# Alembic configuration for async (and sync) engines, CLI or in-process (async-shared).
# The other options are in pyproject.toml, [tool.alembic].

[alembic]
${ini_options("async-shared", only="sqlalchemy.url")}
${INI_LOGGING}\
