"""A schema tenant made from a snapshot of the template tenant (``provision
= snapshot``, schema strategy on PostgreSQL).

The snapshot is the template schema's DDL as ``pg_dump --schema-only
--quote-all-identifiers`` writes it -- every kind of object PostgreSQL has,
in an order it can be replayed in -- with the rows of the ``provision_seed``
tables and a ``REFRESH`` of each populated materialized view
(:mod:`.script`).  It is captured once per template version and stored
(:mod:`.store`).  A new tenant is one script in its transaction, whatever the
history's length -- or, with ``provision_spares``, the rename of a spare
schema made from it ahead of time (:mod:`.spares`) -- under the tenant's
migration lock (:mod:`.copying`).
"""

from .copying import (
    after_template,
    copy_schema,
    make_tenant,
    snapshot_usable,
    tenant_lock,
)
from .script import Snapshot, quoted
from .spares import SPARE_TABLE, Spares
from .store import SNAPSHOT_TABLE, Snapshots, no_template

__all__ = [
    "SNAPSHOT_TABLE",
    "SPARE_TABLE",
    "Snapshot",
    "Snapshots",
    "Spares",
    "after_template",
    "copy_schema",
    "make_tenant",
    "no_template",
    "quoted",
    "snapshot_usable",
    "tenant_lock",
]
