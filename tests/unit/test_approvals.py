"""Approvals: bound to one operation's digest and one client, single use, expiring, decided once, in a store
only the server's user can write."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from fleetbus.guard.approvals import APPROVED, DENIED, PENDING, USED, ApprovalError, ApprovalStore
from fleetbus.operation import DBUS_CALL, Operation

TTL = 900.0
RESTART = Operation(
    DBUS_CALL,
    "web-1",
    "system",
    "org.freedesktop.systemd1",
    "/org/freedesktop/systemd1",
    "org.freedesktop.systemd1.Manager",
    "RestartUnit",
    "ss",
    ("worker-3.service", "replace"),
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    # Starting at 0.0 also proves timestamps of 0 are treated as times, not as missing.
    return Clock(0.0)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> ApprovalStore:
    return ApprovalStore(tmp_path / "approvals", ttl=TTL, clock=clock)


def test_request_describes_the_operation_for_the_person(store: ApprovalStore) -> None:
    approval = store.request(RESTART, "token:ci", "routine changes need approval")
    assert approval.status == PENDING
    assert approval.digest == RESTART.digest()
    assert (approval.client, approval.host) == ("token:ci", "web-1")
    assert approval.arguments == ["worker-3.service", "replace"]
    assert (approval.created, approval.expires) == (0.0, TTL)
    text = approval.describe(now=100.0)
    assert approval.id in text
    assert "800s left" in text
    assert "RestartUnit" in text
    assert "routine changes need approval" in text
    stored = json.loads((store.directory / f"{approval.id}.json").read_text())
    assert stored["digest"] == RESTART.digest()
    assert (store.directory / f"{approval.id}.json").stat().st_mode & 0o777 == 0o600


def test_approved_request_is_consumed_once(store: ApprovalStore) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    assert store.consume(RESTART, "token:ci") is None, "pending is not approved"
    decided = store.decide(approval.id, True, by="alice")
    assert (decided.status, decided.decided_by, decided.decided_at) == (APPROVED, "alice", 0.0)
    used = store.consume(RESTART, "token:ci")
    assert used is not None
    assert (used.id, used.status, used.used_at) == (approval.id, USED, 0.0)
    assert store.consume(RESTART, "token:ci") is None, "an approval is single use"
    assert store.get(approval.id).status == USED


@pytest.mark.parametrize(
    "other",
    [
        replace(RESTART, args=("worker-4.service", "replace")),
        replace(RESTART, args=("worker-3.service", "isolate")),
        replace(RESTART, host="web-2"),
        replace(RESTART, bus="session"),
        replace(RESTART, member="StopUnit"),
    ],
    ids=["other-unit", "other-mode", "other-host", "other-bus", "other-member"],
)
def test_approval_is_bound_to_the_exact_operation(store: ApprovalStore, other: Operation) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    store.decide(approval.id, True, by="alice")
    assert store.consume(other, "token:ci") is None
    assert store.consume(RESTART, "token:ci") is not None


def test_approval_is_bound_to_the_client(store: ApprovalStore) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    store.decide(approval.id, True, by="alice")
    assert store.consume(RESTART, "token:other") is None
    assert store.consume(RESTART, "token:ci") is not None


def test_approval_expires(store: ApprovalStore, clock: Clock) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    store.decide(approval.id, True, by="alice")
    clock.now = TTL
    assert store.consume(RESTART, "token:ci") is None
    assert store.get(approval.id).status == APPROVED


def test_an_expired_request_cannot_be_decided(store: ApprovalStore, clock: Clock) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    clock.now = TTL + 1
    with pytest.raises(ApprovalError, match=rf"approval {approval.id} expired; the call must be made again"):
        store.decide(approval.id, True, by="alice")


def test_denied_request_is_refused_and_never_consumed(store: ApprovalStore, clock: Clock) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    assert store.refused(RESTART, "token:ci") is None
    store.decide(approval.id, False, by="bob")
    refused = store.refused(RESTART, "token:ci")
    assert refused is not None
    assert (refused.id, refused.status, refused.decided_by) == (approval.id, DENIED, "bob")
    assert store.consume(RESTART, "token:ci") is None
    assert store.refused(RESTART, "token:other") is None
    assert store.refused(replace(RESTART, host="web-2"), "token:ci") is None
    clock.now = TTL
    assert store.refused(RESTART, "token:ci") is None, "a refusal lasts as long as the request would have"


def test_deciding_twice_fails(store: ApprovalStore) -> None:
    approval = store.request(RESTART, "token:ci", "why")
    store.decide(approval.id, True, by="alice")
    with pytest.raises(ApprovalError, match=rf"approval {approval.id} is already approved"):
        store.decide(approval.id, False, by="mallory")
    assert store.get(approval.id).decided_by == "alice"


@pytest.mark.parametrize("bad", ["zzzzzzzz", "1234567", "../../etc", "deadbeef\n", "DEADBEEF0", ""])
def test_bad_ids_give_a_clear_error(store: ApprovalStore, bad: str) -> None:
    with pytest.raises(ApprovalError, match=r"is not an approval id \(8 lower-case hex digits"):
        store.decide(bad, True, by="alice")
    with pytest.raises(ApprovalError, match=r"is not an approval id"):
        store.get(bad)


def test_unknown_id_names_the_store(store: ApprovalStore) -> None:
    store.request(RESTART, "token:ci", "why")
    with pytest.raises(ApprovalError, match=rf"^no approval 0badcafe in {store.directory}$"):
        store.decide("0badcafe", True, by="alice")


def test_damaged_request_file_is_named(store: ApprovalStore) -> None:
    intact = store.request(RESTART, "token:ci", "why")
    (store.directory / "0badcafe.json").write_text("{not json")
    with pytest.raises(ApprovalError, match=r"approval 0badcafe is damaged"):
        store.get("0badcafe")
    assert [a.id for a in store.all()] == [intact.id]


def test_pending_request_for_the_same_operation_and_client_is_reused(store: ApprovalStore, clock: Clock) -> None:
    first = store.request(RESTART, "token:ci", "why")
    clock.now = 10.0
    assert store.request(RESTART, "token:ci", "why").id == first.id
    assert store.request(RESTART, "token:other", "why").id != first.id
    assert store.request(replace(RESTART, host="web-2"), "token:ci", "why").id != first.id
    clock.now = TTL + 1
    renewed = store.request(RESTART, "token:ci", "why")
    assert renewed.id != first.id, "an expired request is not reused"
    assert renewed.expires == TTL + 1 + TTL
    assert len(store.all()) == 4


def test_a_decided_request_is_not_reused(store: ApprovalStore) -> None:
    first = store.request(RESTART, "token:ci", "why")
    store.decide(first.id, True, by="alice")
    assert store.consume(RESTART, "token:ci") is not None
    assert store.request(RESTART, "token:ci", "why").id != first.id


def test_store_survives_reopening(tmp_path: Path, clock: Clock) -> None:
    directory = tmp_path / "approvals"
    approval = ApprovalStore(directory, clock=clock).request(RESTART, "token:ci", "why")
    reopened = ApprovalStore(directory, clock=clock)
    reopened.decide(approval.id, True, by="alice")
    assert ApprovalStore(directory, clock=clock).consume(RESTART, "token:ci") is not None


def test_new_store_directory_is_private(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "new" / "approvals")
    store.request(RESTART, "token:ci", "why")
    assert store.directory.stat().st_mode & 0o077 == 0


def test_a_store_is_made_by_its_first_request_not_by_reading_it(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "state" / "approvals")
    assert store.all() == []
    assert store.consume(RESTART, "token:ci") is None
    assert store.refused(RESTART, "token:ci") is None
    with pytest.raises(ApprovalError, match=r"no approval 0badcafe in .*no request was ever stored there"):
        store.decide("0badcafe", True, by="alice")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_store_refuses_a_directory_others_can_write(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "approvals"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(ApprovalError, match=r"is writable by others; chmod 700 it"):
        ApprovalStore(directory)


def test_store_accepts_a_directory_others_can_only_read(tmp_path: Path) -> None:
    directory = tmp_path / "approvals"
    directory.mkdir()
    directory.chmod(0o755)
    assert ApprovalStore(directory).all() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's owner needs root")
def test_store_refuses_a_directory_owned_by_someone_else(tmp_path: Path) -> None:
    directory = tmp_path / "approvals"
    directory.mkdir(mode=0o700)
    os.chown(directory, 4242, -1)
    with pytest.raises(ApprovalError, match=r"belongs to uid 4242, not to this user"):
        ApprovalStore(directory)


def test_prune_forgets_only_ended_requests(store: ApprovalStore, clock: Clock) -> None:
    keep = 100.0
    used = store.request(RESTART, "a", "why")
    store.decide(used.id, True, by="p")
    store.consume(RESTART, "a")
    denied = store.request(RESTART, "b", "why")
    store.decide(denied.id, False, by="p")
    pending = store.request(RESTART, "c", "why")
    clock.now = 500.0
    approved_later = store.request(RESTART, "d", "why")
    store.decide(approved_later.id, True, by="p")
    assert store.prune(keep) == 2
    assert {a.id for a in store.all()} == {pending.id, approved_later.id}
    clock.now = TTL + keep + 1
    # The pending request expired at TTL, more than `keep` ago; the one approved at 500 expires at 1400.
    assert store.prune(keep) == 1
    assert [a.id for a in store.all()] == [approved_later.id]
    clock.now = 500.0 + TTL + keep + 1
    assert store.prune(keep) == 1
    assert store.all() == []


def test_prune_keeps_an_approved_request_until_it_is_used_or_expires(store: ApprovalStore, clock: Clock) -> None:
    clock.now = 5.0
    approval = store.request(RESTART, "token:ci", "why")
    store.decide(approval.id, True, by="alice")
    clock.now = 10.0
    assert store.prune(keep_seconds=0) == 0
    assert store.consume(RESTART, "token:ci") is not None
    clock.now = 11.0
    assert store.prune(keep_seconds=0) == 1


def test_an_id_collision_never_overwrites_another_request(
    store: ApprovalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr("secrets.token_hex", lambda _: next(ids))
    first = store.request(RESTART, "token:ci", "why")
    second = store.request(replace(RESTART, host="web-2"), "token:ci", "why")
    assert (first.id, second.id) == ("aaaaaaaa", "bbbbbbbb")
    assert store.get("aaaaaaaa").host == "web-1"
    assert store.get("bbbbbbbb").host == "web-2"
