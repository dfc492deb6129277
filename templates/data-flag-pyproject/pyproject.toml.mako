<%! from alembic_recipes.configuration.config_text import TOML_POST_WRITE_HOOKS, toml_options %>\
# alembic-recipes: A multi-purpose Alembic configuration: schema and data migrations (data-flag)
# The environment's options; alembic.ini keeps the database URL and logging.
[tool.alembic]
${toml_options("data-flag", script_location)}
${TOML_POST_WRITE_HOOKS}\
