<%! from alembic_recipes.configuration.config_text import INI_LOGGING, ini_options %>\
# Alembic configuration: one schema or one database per tenant (multitenant).
# The other options are in pyproject.toml, [tool.alembic].

[alembic]
${ini_options("multitenant", only="sqlalchemy.url")}
${INI_LOGGING}\
