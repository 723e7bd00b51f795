"""The inventory of hosts fleetbus may reach: Ansible INI, YAML and `ansible-inventory --list` JSON, and the
`[hosts]` table of fleetbus's configuration. Pure data: reading the one given file is its only I/O.

    inventory = load_inventory(settings.inventory, settings.hosts)
    inventory.host("web01").address        # effective ansible_host, else the name
    inventory.variables("web01")           # all < parent group < child group < host
"""

from fleetbus.hosts.inventory.building import InventoryBuilder, empty_inventory
from fleetbus.hosts.inventory.config_table import HostEntry
from fleetbus.hosts.inventory.errors import InventoryError, InventoryLimitError, Location
from fleetbus.hosts.inventory.limits import InventoryLimits
from fleetbus.hosts.inventory.loading import InventoryFormat, load_inventory, parse_inventory
from fleetbus.hosts.inventory.model import ALL, LOCAL, LOCAL_HOST, UNGROUPED, Group, Host, Inventory

__all__ = [
    "ALL",
    "LOCAL",
    "LOCAL_HOST",
    "UNGROUPED",
    "Group",
    "Host",
    "HostEntry",
    "Inventory",
    "InventoryBuilder",
    "InventoryError",
    "InventoryFormat",
    "InventoryLimitError",
    "InventoryLimits",
    "Location",
    "empty_inventory",
    "load_inventory",
    "parse_inventory",
]
