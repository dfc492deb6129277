"""How a missing tenant is made (``provision``, ``provision_template``,
``provision_seed``, ``provision_spares``, ``-x new``): read and checked once,
like every option."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ...configuration.option_table import option
from ...configuration.options import InvalidOption
from ...configuration.reader import OptionReader
from .names import split_list, validate_tenant

__all__ = ["PROVISION_MODES", "Provision", "Provisioning", "read_provisioning"]

Provision = Literal["replay", "snapshot"]
PROVISION_MODES: tuple[Provision, ...] = ("replay", "snapshot")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


@dataclass(frozen=True)
class Provisioning:
    """How this command makes the tenants it creates."""

    how: Provision = "replay"
    """``replay``: every revision; ``snapshot``: a copy of :attr:`template`."""
    template: str = "_template"
    """The tenant kept at head that ``snapshot`` copies."""
    seed: tuple[str, ...] = ()
    """Tables of the template whose rows are copied too."""
    new: bool = False
    """``-x new=true``: the named tenant must not exist yet."""
    spares: int = 0
    """How many spare schemas at head ``snapshot`` keeps (schema strategy)."""

    @property
    def snapshot(self) -> bool:
        return self.how == "snapshot"


def read_provisioning(reader: OptionReader, *, schemas: bool) -> Provisioning:
    """The ``provisioning`` field of the settings; *schemas*: tenants are
    schemas of one database, where spares (``provision_spares``) can be."""
    value, source = reader.value("provision")
    how: Provision = "replay"
    if value is not None:
        found = [mode for mode in PROVISION_MODES if value == mode]
        if not found:
            raise InvalidOption.expected(value, source, option("provision").accepted)
        how = found[0]
    template = reader.ini("provision_template") or "_template"
    validate_tenant(template, source="provision_template")
    seed = tuple(split_list(reader.ini("provision_seed")))
    for table in seed:
        if not _TABLE_NAME.fullmatch(table):
            raise InvalidOption.expected(
                table, "provision_seed", option("provision_seed").accepted
            )
    spares = reader.whole("provision_spares")
    if spares and not schemas:
        raise InvalidOption(
            f"invalid provision_spares {spares}: spare schemas are made for"
            " tenant_strategy = schema on one database (no servers); use 0 here"
        )
    return Provisioning(how, template, seed, reader.flag("new_tenant"), spares)
