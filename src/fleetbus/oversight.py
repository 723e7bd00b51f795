"""What a person runs to oversee fleetbus: decide approvals, and read and verify the audit log."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetbus.config import Settings
from fleetbus.guard import audit
from fleetbus.guard.approvals import PENDING, Approval, ApprovalError, ApprovalStore
from fleetbus.sandbox.control import Sandbox
from fleetbus.tools import times

AddOptions = Callable[[argparse.ArgumentParser], None]


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_state_options: AddOptions,
    add_approvals_options: AddOptions,
) -> None:
    approvals = commands.add_parser(
        "approvals",
        help="list approval requests (pending ones unless --all)",
        description="Without --state-dir/--approvals-dir (or FLEETBUS_STATE_DIR/FLEETBUS_APPROVALS_DIR), the "
        "stores of running sandboxes are listed too.",
    )
    approvals.add_argument("--all", action="store_true", help="also approved, denied, used and expired ones")
    add_approvals_options(approvals)
    for name, verb in (("approve", "approve"), ("deny", "refuse")):
        command = commands.add_parser(
            name,
            help=f"{verb} a pending approval request",
            description=f"{verb.capitalize()} request ID, looked up where the server keeps it: the configured "
            "store, else (when no store is named) the stores of running sandboxes.",
        )
        command.add_argument("approval_id", metavar="ID")
        add_approvals_options(command)
    audit_parser = commands.add_parser("audit", help="verify, tail or query the audit log")
    actions = audit_parser.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify",
        help="check the hash chain (the HMAC chain, with the audit key); exit 0 when intact, 1 naming the first bad "
        "record",
    )
    verify.add_argument(
        "--after-crash",
        action="store_true",
        help="the server crashed: accept records written after the head file (they must still chain)",
    )
    stats = actions.add_parser("stats", help="records and bytes per day, and the files on disk")
    tail = actions.add_parser("tail", help="the last records")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    query = actions.add_parser("query", help="records matching filters")
    query.add_argument("--client")
    query.add_argument("--event")
    query.add_argument("--target", help="glob on Interface.Member or Member, e.g. '*.RestartUnit'")
    query.add_argument("--call-id", help="every record of one fan-out or rolling job (its call_id)")
    query.add_argument("--work-order", help="every record a work order caused (a rolling job's or _meta.work_order)")
    query.add_argument("--since", metavar="TIME", help=f"records from this time on: {times.HELP}")
    query.add_argument("--limit", type=int, default=100)
    # On each action, not on `audit`: options of a parent must come before the action, which nobody types.
    for action in (verify, stats, tail, query):
        add_state_options(action)


def _person() -> str:
    try:
        return f"cli:{getpass.getuser()}(uid {os.geteuid()})"
    except (KeyError, OSError):
        return f"cli:uid {os.geteuid()}"


@dataclass(frozen=True)
class Site:
    """An approval store and why it is consulted."""

    store: ApprovalStore
    origin: str


def approval_sites(settings: Settings) -> list[Site]:
    """Where a server's requests are: the store the settings name — resolved as the server resolves them — and,
    when they name none, the stores of running sandboxes (whose servers keep their state in the sandbox)."""
    sites = [Site(ApprovalStore(settings.approvals_directory), "configured")]
    if settings.names_approvals_location():
        return sites
    for sandbox in Sandbox.running():
        directory = sandbox.paths.state_dir / "approvals"
        if directory == settings.approvals_directory:
            continue
        try:
            sites.append(Site(ApprovalStore(directory), f"sandbox {sandbox.paths.root}"))
        except ApprovalError as exc:
            print(f"fleetbus: note: skipping {directory}: {exc}", file=sys.stderr)
    return sites


def approvals_main(args: argparse.Namespace, settings: Settings) -> int:
    sites = approval_sites(settings)
    if args.command == "approvals":
        return _list(sites, show_all=args.all)
    site = _holding(sites, args.approval_id)
    decided = site.store.decide(args.approval_id, args.command == "approve", by=_person())
    print(f"{decided.id} {decided.status}: {decided.operation}")
    if decided.status == "approved":
        print("the same call, repeated by the client, will now run once", file=sys.stderr)
    return 0


def _list(sites: list[Site], *, show_all: bool) -> int:
    now, shown = time.time(), 0
    for site in sites:
        listed = [a for a in site.store.all() if show_all or _open(a, now)]
        if listed and len(sites) > 1:
            print(f"# {site.store.directory} ({site.origin})")
        for approval in listed:
            print(approval.describe(now))
        shown += len(listed)
    if not shown:
        where = ", ".join(str(site.store.directory) for site in sites)
        print(f"no {'' if show_all else 'pending '}approval requests in {where}", file=sys.stderr)
    return 0


def _open(approval: Approval, now: float) -> bool:
    return approval.status == PENDING and not approval.expired(now)


def _holding(sites: list[Site], approval_id: str) -> Site:
    holding = [site for site in sites if site.store.contains(approval_id)]
    if len(holding) == 1:
        return holding[0]
    where = ", ".join(f"{site.store.directory} ({site.origin})" for site in (holding or sites))
    if not holding:
        raise ApprovalError(
            f"no approval {approval_id} in {where}; a server with its state elsewhere names it in its message "
            "(--state-dir DIR)"
        )
    raise ApprovalError(f"approval {approval_id} is in several stores: {where}; name one with --state-dir DIR")


def audit_main(args: argparse.Namespace, directory: Path, key: bytes | None = None) -> int:
    if args.audit_command == "verify":
        result = audit.verify(directory, key=key, after_crash=args.after_crash)
        if result.ok:
            notes = [*(["HMAC chain and signed head checked with the audit key"] if key else []), result.note]
            note = "; ".join(n for n in notes if n)
            print(f"audit log intact: {result.records} records" + (f" ({note})" if note else ""))
            return 0
        print(f"audit log BROKEN after {result.records} good records: {result.problem}", file=sys.stderr)
        return 1
    if args.audit_command == "stats":
        return _stats(directory)
    if args.audit_command == "tail":
        records = audit.tail(directory, args.n)
    else:
        since = None
        if args.since is not None:
            since = times.parse_time(args.since, datetime.now(UTC), argument="--since").timestamp()
        records = audit.query(
            directory,
            since=since,
            client=args.client,
            event=args.event,
            target=args.target,
            limit=args.limit,
            call_id=args.call_id,
            work_order=args.work_order,
        )
    for record in records:
        print(json.dumps(record, ensure_ascii=False))
    return 0


def _stats(directory: Path) -> int:
    days = audit.volume(directory)
    print(f"{'day':<10} {'records':>10} {'bytes':>14} {'refusals':>10}")
    for day in days:
        print(f"{day.day:<10} {day.records:>10} {day.bytes:>14} {day.refusals:>10}")
    files = audit.log_files(directory)
    on_disk = sum(path.stat().st_size for path in files if path.exists())
    records = sum(day.records for day in days)
    print(f"{'total':<10} {records:>10} {on_disk:>14} {sum(d.refusals for d in days):>10}")
    print(f"{len(files)} file(s) in {directory}")
    return 0
