"""The audit log: hash-chained JSONL records, fsynced, rotated without breaking the chain, mirrored to journald.

Each record carries `prev` (the previous record's hash) and `hash` (SHA-256 of its own canonical JSON without
`hash`), and each line is exactly that canonical JSON. A small head file names the last record acknowledged, so
cutting records off the end is detected too. A crash can leave the log ahead of the head (records written, head
not yet) or end it in half a record that was never acknowledged — `verify` accepts both with a note, because
everything the head covers still chains.

records.py encodes one record, files.py knows the files, log.py writes, read.py queries and verifies.
"""

from fleetbus.guard.audit.files import CURRENT, HEAD, HEAD_BYTES, ROTATED, iter_file, log_files, read_head
from fleetbus.guard.audit.log import AuditLog, journal_datagram
from fleetbus.guard.audit.read import DayVolume, Verification, iter_records, query, tail, verify, volume
from fleetbus.guard.audit.records import GENESIS, RESERVED, AuditError, canonical, monotonic_ms, record_hash, seal
from fleetbus.guard.audit.retention import Retention

__all__ = [
    "CURRENT",
    "GENESIS",
    "HEAD",
    "HEAD_BYTES",
    "RESERVED",
    "ROTATED",
    "AuditError",
    "AuditLog",
    "DayVolume",
    "Retention",
    "Verification",
    "canonical",
    "iter_file",
    "iter_records",
    "journal_datagram",
    "log_files",
    "monotonic_ms",
    "query",
    "read_head",
    "record_hash",
    "seal",
    "tail",
    "verify",
    "volume",
]
