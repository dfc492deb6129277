"""Fixtures: real database servers, temp projects driven through the ``alembic`` CLI.

* ``pg_url`` / ``mysql_url``: a throwaway database on the PostgreSQL / MariaDB
  server at ``ALEMBIC_RECIPES_PG_URL`` / ``ALEMBIC_RECIPES_MYSQL_URL``, dropped
  afterwards.  An unreachable server skips the test, except under ``CI=true``
  where it fails: CI must never silently skip a server.
* ``pg_cluster``: a PostgreSQL cluster of the test session's own (initdb +
  pg_ctl as the ``postgres`` OS user, on a free port, with
  ``max_prepared_transactions = 10``) where the shared server's settings get in
  the way; stopped and removed afterwards.  ``pg_second``: another one, per
  test, a second server the test may stop (:class:`Cluster`).
* ``pgbouncer``: PgBouncer in transaction mode in front of the shared
  PostgreSQL, on a free port; ``through(db)`` is *db*'s URL through it.
* ``project``: ``make(template, url=...)`` runs ``alembic init -t template`` in
  a temp dir and returns a :class:`Project` that runs ``alembic`` commands and
  edits revisions the way a user would.  Commands run Alembic's command line
  in this process (:func:`in_process`, 40 times faster than a new
  interpreter); tests marked ``console_script`` (``test_everyday``: every
  template's ordinary day) and runs that fork workers start the real console
  script, as do the concurrency and signal tests (:func:`spawn`).
"""

pytest_plugins = [
    "support.servers",
    "support.harness",
    "support.projects",
]
