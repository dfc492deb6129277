"""Working from ``MetaData`` rather than revision files.

``apply`` brings a database to a ``MetaData``; ``bootstrap`` builds a fresh
database and stamps it at head; ``tables`` renders existing tables as Alembic
code; ``heads`` says whether a database is at head.
"""
