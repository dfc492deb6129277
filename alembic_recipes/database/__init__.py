"""The database layer: connections, poolers, the lock, timeouts, retries, stops.

``connections`` gives env.py a synchronous connection whatever the caller has;
``poolers`` knows PgBouncer; ``locks`` is the migration lock; ``blocking``
says who held what a migration waited for; ``timeouts``, ``online_ddl`` and
``retries`` shape each migration transaction; ``cancelling`` and ``stopping``
end a run on a signal.  Nothing here reads configuration or runs env.py.
"""
