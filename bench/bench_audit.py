"""Cost of one audit append (the gateway writes two per call) with a plain SHA-256 chain and with the HMAC chain
an audit key turns on, against a reference measured in the same run: a bare hashlib chain over the same records
(encode, hash, write a line), which is what any hash-chained log costs at least.

Records are shaped like the gateway's; fsync is off (its cost is the disk's, not the chain's) and no journald
copy is sent. Prints µs per record and the ratios. Run: python bench/bench_audit.py [--records N] [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fleetbus.guard.audit import AuditLog


def record(n: int) -> dict[str, Any]:
    return {
        "event": "allowed",
        "client": "http:token-3",
        "host": "local",
        "operation": {
            "kind": "dbus.call",
            "bus": "system",
            "destination": "org.freedesktop.systemd1",
            "path": "/org/freedesktop/systemd1",
            "interface": "org.freedesktop.systemd1.Manager",
            "member": "RestartUnit",
            "signature": "ss",
        },
        "digest": hashlib.sha256(str(n).encode()).hexdigest(),
        "args": [f"worker-{n}.service", "replace"],
        "decision": {"verdict": "allow", "rule": "admin:routine", "reason": "routine changes", "risk": "routine"},
        "approval": None,
    }


def plain_chain(directory: Path, records: list[dict[str, Any]]) -> float:
    """The reference: canonical JSON, SHA-256 over it and the previous hash, one write per line."""
    encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    fd = os.open(directory / "reference.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    prev = "0" * 64
    started = time.perf_counter()
    for seq, fields in enumerate(records, 1):
        body = {"seq": seq, **fields, "prev": prev}
        prev = hashlib.sha256(encode(body).encode()).hexdigest()
        os.write(fd, encode({**body, "hash": prev}).encode() + b"\n")
    elapsed = time.perf_counter() - started
    os.close(fd)
    return elapsed


def audit_log(directory: Path, records: list[dict[str, Any]], key: bytes | None) -> float:
    log = AuditLog(directory, fsync=False, key=key)
    log.open()
    started = time.perf_counter()
    for fields in records:
        log.append(fields)
    elapsed = time.perf_counter() - started
    log.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    records = [record(n) for n in range(options.records)]
    results: dict[str, list[float]] = {"reference": [], "plain": [], "hmac": []}
    for _ in range(options.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            results["reference"].append(plain_chain(root, records))
            results["plain"].append(audit_log(root / "plain", records, None))
            results["hmac"].append(audit_log(root / "hmac", records, os.urandom(32)))
    per_record = {name: statistics.median(times) / options.records * 1e6 for name, times in results.items()}
    reference = per_record["reference"]
    print(f"{options.records} records × {options.rounds} rounds (median), µs per record:")
    print(f"  {'bare hashlib chain (reference)':<36}{reference:7.2f}")
    for name, label in (("plain", "AuditLog, SHA-256 chain"), ("hmac", "AuditLog, HMAC chain + signed head")):
        print(f"  {label:<36}{per_record[name]:7.2f}   ×{per_record[name] / reference:.2f} of the reference")
    print(f"  HMAC over SHA-256 in AuditLog: ×{per_record['hmac'] / per_record['plain']:.2f}")


if __name__ == "__main__":
    main()
