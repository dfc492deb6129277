<%! from alembic_recipes.configuration.config_text import INI_LOGGING, ini_options %>\
# A multi-purpose Alembic configuration: schema and data migrations (data-flag).
# The other options are in pyproject.toml, [tool.alembic].

[alembic]
${ini_options("data-flag", only="sqlalchemy.url")}
${INI_LOGGING}\
