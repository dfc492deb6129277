<%! from alembic_recipes.configuration.config_text import INI_LOGGING, INI_POST_WRITE_HOOKS, ini_options %>\
# Alembic configuration: one schema or one database per tenant (multitenant).

[alembic]
${ini_options("multitenant", script_location)}
${INI_POST_WRITE_HOOKS}${INI_LOGGING}\
