"""What a person runs to oversee fleetbus: decide approvals, and read and verify the audit log."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fleetbus.guard import audit
from fleetbus.guard.approvals import PENDING, ApprovalError, ApprovalStore


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_settings: Callable[[argparse.ArgumentParser], None],
) -> None:
    approvals = commands.add_parser("approvals", help="list approval requests (pending ones unless --all)")
    approvals.add_argument("--all", action="store_true", help="also approved, denied, used and expired ones")
    for name, verb in (("approve", "approve"), ("deny", "refuse")):
        command = commands.add_parser(name, help=f"{verb} a pending approval request")
        command.add_argument("approval_id", metavar="ID")
    audit_parser = commands.add_parser("audit", help="verify, tail or query the audit log")
    actions = audit_parser.add_subparsers(dest="audit_command", required=True)
    actions.add_parser("verify", help="check the hash chain; exit 0 when intact, 1 naming the first bad record")
    tail = actions.add_parser("tail", help="the last records")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    query = actions.add_parser("query", help="records matching filters")
    query.add_argument("--client")
    query.add_argument("--event")
    query.add_argument("--target", help="glob on Interface.Member or Member, e.g. '*.RestartUnit'")
    query.add_argument("--since", help="ISO 8601 time")
    query.add_argument("--limit", type=int, default=100)
    for parser in (approvals, *(commands.choices[n] for n in ("approve", "deny")), audit_parser):
        add_settings(parser)


def _person() -> str:
    try:
        return f"cli:{getpass.getuser()}(uid {os.geteuid()})"
    except (KeyError, OSError):
        return f"cli:uid {os.geteuid()}"


def approvals_main(args: argparse.Namespace, directory: Path) -> int:
    try:
        store = ApprovalStore(directory)
        if args.command == "approvals":
            now = time.time()
            shown = [a for a in store.all() if args.all or (a.status == PENDING and not a.expired(now))]
            for approval in shown:
                print(approval.describe(now))
            if not shown:
                print("no pending approval requests" if not args.all else "no approval requests", file=sys.stderr)
            return 0
        decided = store.decide(args.approval_id, args.command == "approve", by=_person())
    except ApprovalError as exc:
        print(f"fleetbus {args.command}: {exc}", file=sys.stderr)
        return 1
    print(f"{decided.id} {decided.status}: {decided.operation}")
    if decided.status == "approved":
        print("the same call, repeated by the client, will now run once", file=sys.stderr)
    return 0


def audit_main(args: argparse.Namespace, directory: Path) -> int:
    if args.audit_command == "verify":
        result = audit.verify(directory)
        if result.ok:
            note = f" ({result.note})" if result.note else ""
            print(f"audit log intact: {result.records} records{note}")
            return 0
        print(f"audit log BROKEN after {result.records} good records: {result.problem}", file=sys.stderr)
        return 1
    if args.audit_command == "tail":
        records = audit.tail(directory, args.n)
    else:
        since = datetime.fromisoformat(args.since.replace("Z", "+00:00")).timestamp() if args.since else None
        records = audit.query(
            directory, since=since, client=args.client, event=args.event, target=args.target, limit=args.limit
        )
    for record in records:
        print(json.dumps(record, ensure_ascii=False))
    return 0
