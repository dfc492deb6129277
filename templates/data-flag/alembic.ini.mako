<%! from alembic_recipes.configuration.config_text import INI_LOGGING, INI_POST_WRITE_HOOKS, ini_options %>\
# A multi-purpose Alembic configuration: schema and data migrations (data-flag).

[alembic]
${ini_options("data-flag", script_location)}
${INI_POST_WRITE_HOOKS}${INI_LOGGING}\
