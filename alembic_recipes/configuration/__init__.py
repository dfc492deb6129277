"""Configuration: every option, read once, the Alembic way.

``option_table`` defines each option once; ``options`` reads one value
(``-x``, ``config.attributes``, ``[tool.alembic]``, the ini); ``settings``
reads and checks them all when env.py loads; ``config_text`` writes the
templates' option blocks and the reference from the table; ``filters``
combines the include filters the options make with the caller's own.
"""
