<%! from alembic_recipes.configuration.config_text import TOML_POST_WRITE_HOOKS, toml_options %>\
# alembic-recipes: Alembic configuration: one schema or one database per tenant (multitenant)
# The environment's options; alembic.ini keeps the database URL and logging.
[tool.alembic]
${toml_options("multitenant", script_location)}
${TOML_POST_WRITE_HOOKS}\
