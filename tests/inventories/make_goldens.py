"""Regenerates the golden files of this directory from Ansible itself (ansible-core 2.14 on Debian 12:
`apt-get install ansible-core`), so the unit tests compare fleetbus with Ansible without needing it in CI.

    /usr/bin/python3 tests/inventories/make_goldens.py

- `listings/<fixture>.json`: what `ansible-inventory -i <fixture> --list` printed, byte for byte.
- `patterns.json`: for each fixture and pattern, the hosts Ansible's InventoryManager.get_hosts() returns
  (the list `ansible PATTERN --list-hosts` prints), the terms it warned about ("Could not match supplied host
  pattern"), or the error it raised. Each pattern is evaluated under several PYTHONHASHSEEDs: Ansible orders
  the hosts of grandchild groups by iterating a set, so where its order changes with the seed the golden
  says `"ordered": false` and only the set of hosts is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEEDS = ("0", "1", "2", "3", "4", "5")

PATTERNS: dict[str, list[str]] = {
    "patterns.ini": [
        "all",
        "*",
        "cobweb",
        "cobweb:webbing",
        "cobweb,webbing",
        "webservers",
        "webservers:dbservers",
        "webservers:!atlanta",
        "webservers:&staging",
        "webservers:dbservers:&staging:!phoenix",
        "192.0.*",
        "*.example.com",
        "*.com",
        "one*.com:dbservers",
        "webservers[0]",
        "webservers[-1]",
        "webservers[0:2]",
        "webservers[1:]",
        "webservers[:3]",
        "webservers[1:0]",
        "webservers[9]",
        "webservers[-9]",
        "webservers[3:99]",
        "~(web|db).*\\.example\\.com",
        "~web",
        "~.*bing",
        "!atlanta",
        "&staging",
        "!atlanta:!phoenix",
        "webservers:&staging:&atlanta",
        "staging:webservers",
        "webservers:staging",
        "nosuch",
        "webservers:nosuch",
        "nosuch*",
        "!nosuch",
        "empty",
        "empty[0]",
        "prod",
        "prod[3:4]",
        "prod[-1]",
        "web*",
        "web*[0]",
        "*[1]",
        "ungrouped",
        "all:!webservers",
        "webservers,&staging,!atlanta",
        "webservers:&staging,dbservers",
        "webservers dbservers",
        "192.0.2.10",
        "192.0.2.10:lab",
        "lab:&192.0.*",
        "host1:host2",
        "host[1:2]",
        "host?",
        "h*[0:1]",
        "~host\\d",
        "*:!lab",
        "lab[0]:lab[-1]",
        "w[!e]*",
        "[cw]*",
    ],
    "addresses.ini": [
        "all",
        "2001:db8::1",
        "2001:db8::1,2001:db8::2",
        "v6,!2001:db8::1",
        "v6:!2001:db8::1",
        "fe80::*",
        "fe80::a,fe80::c",
        "10.0.1.*",
        "10.0.*:&10.*.3",
        "web0*",
        "web0[1:2]",
        "web*[1:2]",
        "192.0.2.2",
        "192.0.2.2:2222",
        "[2001:db8::1]:2200",
        "~^fe80",
        "~10\\.0\\.[12]\\.1$",
    ],
    "groups_of_groups.ini": [
        "all",
        "prod",
        "test",
        "prod:test",
        "prod:&webservers",
        "east:!prod",
        "all:!test",
        "*[0]",
        "*[-1]",
        "e*",
        "*o*",
        "ungrouped",
        "mail.example.com",
        "~(foo|bar)",
    ],
    "groups_of_groups.yml": ["all", "prod", "test", "prod:&webservers", "all:!test", "*[0]", "ungrouped"],
    "inheritance.ini": ["all", "usa", "southeast", "usa[0]", "usa[-1]", "northeast", "host2", "*east", "usa:!raleigh"],
    "inheritance.yml": ["all", "usa", "southeast", "usa[0]", "northeast", "*east"],
    "ranges.ini": [
        "all",
        "webservers[0:2]",
        "webservers[-1]",
        "www0*",
        "db-[abc].example.com",
        "racks",
        "rack1-*",
        "odd_webservers[-1]",
        "~www[0-9]{2}\\.example\\.com",
        "webservers:&odd_webservers:!www01.example.com",
        "db",
        "db-1*",
    ],
    "ranges.yml": ["all", "webservers[0:2]", "racks", "databases"],
    "variables.ini": ["all", "localhost", "targets", "behavioral[1:2]", "*host*", "ungrouped"],
    "variables.yml": ["all", "targets", "ungrouped"],
    "precedence.ini": ["all", "region", "dc1:dc2", "zz_early", "late:&dc1", "*[0:2]", "region:!dc2"],
    "basic.ini": ["all", "ungrouped", "webservers:dbservers", "*.example.com[1:3]"],
    "basic.yml": ["all", "ungrouped", "webservers:dbservers"],
    "priority.yml": ["all", "a_group", "b_group", "b_group:!a_group"],
}


def write_listings() -> None:
    out = HERE / "listings"
    out.mkdir(exist_ok=True)
    for fixture in sorted(HERE.glob("*.ini")) + sorted(HERE.glob("*.yml")):
        printed = subprocess.run(
            ["ansible-inventory", "-i", str(fixture), "--list"], check=True, capture_output=True, text=True
        )
        if printed.stderr.strip():
            raise SystemExit(f"ansible-inventory warned about {fixture.name}:\n{printed.stderr}")
        (out / f"{fixture.name}.json").write_text(printed.stdout)


def evaluate_here() -> dict[str, dict[str, dict[str, Any]]]:
    """Runs inside Ansible's Python: every pattern of every fixture, as InventoryManager sees it."""
    # Imported here: only this worker runs under the Python that has Ansible (never the project's venv).
    from ansible.inventory import manager  # type: ignore[import-not-found]  # noqa: PLC0415
    from ansible.parsing.dataloader import DataLoader  # type: ignore[import-not-found]  # noqa: PLC0415

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for fixture, patterns in PATTERNS.items():
        results[fixture] = {}
        for pattern in patterns:
            warned: list[str] = []
            manager.display.warning = lambda message, formatted=False, bucket=warned: bucket.append(message)
            inventory = manager.InventoryManager(loader=DataLoader(), sources=[str(HERE / fixture)])
            try:
                hosts = [host.name for host in inventory.get_hosts(pattern)]
            except Exception as error:
                results[fixture][pattern] = {"error": str(error)}
                continue
            prefix = "Could not match supplied host pattern, ignoring: "
            unmatched = [message[len(prefix) :] for message in warned if message.startswith(prefix)]
            results[fixture][pattern] = {"hosts": hosts, "unmatched": unmatched}
    return results


def write_patterns() -> None:
    runs = []
    for seed in SEEDS:
        printed = subprocess.run(
            [sys.executable, __file__, "--evaluate"],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        runs.append(json.loads(printed.stdout))
    golden: dict[str, dict[str, dict[str, Any]]] = {}
    for fixture, patterns in PATTERNS.items():
        golden[fixture] = {}
        for pattern in patterns:
            answers = [run[fixture][pattern] for run in runs]
            first = dict(answers[0])
            if "hosts" in first:
                first["ordered"] = all(answer["hosts"] == first["hosts"] for answer in answers)
                if not all(sorted(answer["hosts"]) == sorted(first["hosts"]) for answer in answers):
                    raise SystemExit(f"Ansible selects different hosts for {pattern!r} in {fixture} by hash seed")
            golden[fixture][pattern] = first
    (HERE / "patterns.json").write_text(json.dumps(golden, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--evaluate"]:
        json.dump(evaluate_here(), sys.stdout)
    else:
        write_listings()
        write_patterns()
