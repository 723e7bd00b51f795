"""The audit key: with it the chain is an HMAC chain and the head is signed, so someone who can write the log but
not read the key can neither append, edit, nor cut it undetected; without a key the plain chain works as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetbus.config import load_settings
from fleetbus.guard.audit import CURRENT, HEAD, HEAD_BYTES, AuditError, AuditLog, canonical, record_hash, verify
from fleetbus.guard.audit.keys import MIN_KEY_BYTES, AuditKeyError, load_key

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))


def entry(n: int) -> dict[str, Any]:
    return {"event": "allowed", "client": "stdio", "host": "local", "args": [f"worker-{n}.service"]}


def keyed_log(directory: Path, count: int, key: bytes = KEY) -> None:
    log = AuditLog(directory, fsync=False, key=key)
    for n in range(1, count + 1):
        log.append(entry(n))
    log.close()


def records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / CURRENT).read_bytes().splitlines()]


def write_records(directory: Path, chain: list[dict[str, Any]]) -> None:
    (directory / CURRENT).write_bytes(b"".join(canonical(r) + b"\n" for r in chain))


def forge(previous: dict[str, Any], fields: dict[str, Any], *, keep_chain_field: bool = True) -> dict[str, Any]:
    """What someone without the key can make: a record chained to `previous` with a plain SHA-256 — and, to look
    like the others, the same `chain` field (they cannot compute the HMAC it promises)."""
    forged: dict[str, Any] = {"seq": previous["seq"] + 1, "time": previous["time"], **fields, "prev": previous["hash"]}
    if keep_chain_field:
        forged["chain"] = previous["chain"]
    forged["hash"] = record_hash(forged)
    return forged


def plain_head(directory: Path, record: dict[str, Any]) -> None:
    """The head a forger writes: they can name any record, but not sign it."""
    (directory / HEAD).write_bytes(json.dumps({"seq": record["seq"], "hash": record["hash"]}).encode())


def test_a_keyed_log_verifies_with_its_key_and_every_record_is_an_hmac(tmp_path: Path) -> None:
    keyed_log(tmp_path, 10)
    result = verify(tmp_path, key=KEY)
    assert (result.ok, result.records, result.problem, result.note) == (True, 10, None, None)
    chain = records(tmp_path)
    assert {r["chain"] for r in chain} == {"hmac-sha256"}
    assert all(r["hash"] == record_hash(r, KEY) != record_hash(r) for r in chain)
    head = json.loads((tmp_path / HEAD).read_bytes())
    assert set(head) == {"seq", "hash", "mac"}
    assert len((tmp_path / HEAD).read_bytes()) == HEAD_BYTES


@pytest.mark.parametrize("move_head", [False, True], ids=["head-untouched", "head-rewritten"])
@pytest.mark.parametrize("keep_chain_field", [True, False], ids=["claims-hmac", "plain"])
def test_forged_appends_fail_with_the_key(tmp_path: Path, move_head: bool, keep_chain_field: bool) -> None:
    keyed_log(tmp_path, 5)
    chain = records(tmp_path)
    forged = forge(chain[-1], entry(99), keep_chain_field=keep_chain_field)
    write_records(tmp_path, [*chain, forged])
    if move_head:
        plain_head(tmp_path, forged)
    for after_crash in (False, True):  # "the server crashed" excuses no forgery
        result = verify(tmp_path, key=KEY, after_crash=after_crash)
        assert not result.ok, after_crash
        assert result.problem is not None
        # The record is judged before the head: the forged record is named whatever the head says.
        if keep_chain_field:
            assert result.problem == (
                "audit.log line 6 (record 6): its HMAC does not match under the audit key — it was edited or written "
                "without the key"
            )
        else:
            assert result.problem == (
                "audit.log line 6 (record 6): not HMAC-chained though records from 1 on are — it was written by "
                "someone without the audit key"
            )


def test_a_forged_append_is_a_failure_naming_the_records_even_without_the_key(tmp_path: Path) -> None:
    # Without the key its HMACs cannot be checked, but records past the head are still unacknowledged.
    keyed_log(tmp_path, 5)
    chain = records(tmp_path)
    first = forge(chain[-1], entry(98))
    write_records(tmp_path, [*chain, first, forge(first, entry(99))])
    result = verify(tmp_path)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.startswith("records 6–7 come after record 5, the last one audit.head acknowledges")


def test_cutting_the_tail_and_rewriting_the_head_fails_with_the_key(tmp_path: Path) -> None:
    keyed_log(tmp_path, 10)
    chain = records(tmp_path)[:7]
    write_records(tmp_path, chain)
    plain_head(tmp_path, chain[-1])
    assert verify(tmp_path).ok, "without the key, a consistent cut cannot be told from a shorter log"
    result = verify(tmp_path, key=KEY)
    assert (result.ok, result.problem) == (
        False,
        "audit.head is not signed although an audit key is given — it was written without the key",
    )
    # Copying the last signature onto the new end does not help: it signs record 10, not record 7.
    signed = json.loads((tmp_path / HEAD).read_bytes() or b"{}")
    keyed_log(tmp_path / "other", 10)
    last_mac = json.loads((tmp_path / "other" / HEAD).read_bytes())["mac"]
    (tmp_path / HEAD).write_bytes(json.dumps({**signed, "mac": last_mac}).encode())
    result = verify(tmp_path, key=KEY)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.startswith("audit.head's signature does not match the audit key")


def test_an_edited_record_fails_with_the_key_even_with_the_chain_recomputed(tmp_path: Path) -> None:
    keyed_log(tmp_path, 8)
    chain = records(tmp_path)
    edited = [*chain[:3]]
    # Change record 4 and rebuild everything after it as a forger can: plain hashes, prev links, a plain head.
    for original in chain[3:]:
        fields = {k: v for k, v in original.items() if k not in ("seq", "time", "prev", "hash", "chain")}
        if original["seq"] == 4:
            fields["client"] = "someone-else"
        rebuilt = forge(edited[-1], fields)
        rebuilt["time"] = original["time"]
        rebuilt["hash"] = record_hash(rebuilt)
        edited.append(rebuilt)
    write_records(tmp_path, edited)
    plain_head(tmp_path, edited[-1])
    result = verify(tmp_path, key=KEY)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.startswith("audit.log line 4 (record 4): its HMAC does not match under the audit key")
    # The head, left as the writer signed it, does not save the edit either.
    keyed_log(tmp_path / "fresh", 8)
    write_records(tmp_path / "fresh", [*records(tmp_path / "fresh")[:3], *edited[3:]])
    assert not verify(tmp_path / "fresh", key=KEY).ok


def test_a_wrong_key_fails(tmp_path: Path) -> None:
    keyed_log(tmp_path, 3)
    result = verify(tmp_path, key=bytes(32))
    assert not result.ok
    assert result.problem is not None
    assert "its HMAC does not match under the audit key" in result.problem


def test_a_keyed_log_without_the_key_verifies_its_links_and_says_what_it_could_not_check(tmp_path: Path) -> None:
    keyed_log(tmp_path, 4)
    result = verify(tmp_path)
    assert (result.ok, result.records) == (True, 4)
    assert result.note == (
        "the log is HMAC-chained; without the audit key only its order and links were checked, not who wrote it"
    )


def test_the_plain_chain_still_works_without_a_key(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, fsync=False)
    for n in range(1, 6):
        log.append(entry(n))
    log.close()
    assert "chain" not in records(tmp_path)[0]
    assert verify(tmp_path) == verify(tmp_path)  # deterministic
    result = verify(tmp_path)
    assert (result.ok, result.records, result.note) == (True, 5, None)
    assert "mac" not in json.loads((tmp_path / HEAD).read_bytes())


def test_keying_a_plain_log_carries_it_over_and_a_forger_cannot_go_back(tmp_path: Path) -> None:
    plain = AuditLog(tmp_path, fsync=False)
    for n in range(1, 4):
        plain.append(entry(n))
    plain.close()
    keyed = AuditLog(tmp_path, fsync=False, key=KEY)
    keyed.open()  # says at once that the chain is keyed from here, so the head is signed even before a call
    keyed.close()
    chain = records(tmp_path)
    assert chain[-1]["event"] == "recovered"
    assert chain[-1]["note"] == "records from here on are HMAC-chained under the audit key (records up to 3 were not)"
    assert verify(tmp_path, key=KEY).ok
    # An edit in the plain part breaks the link the first keyed record authenticates.
    chain[1]["client"] = "edited"
    chain[1]["hash"] = record_hash(chain[1])
    write_records(tmp_path, chain)
    assert not verify(tmp_path, key=KEY).ok


def test_a_writer_without_the_key_refuses_to_continue_a_keyed_log(tmp_path: Path) -> None:
    keyed_log(tmp_path, 2)
    with pytest.raises(AuditError, match=r"is HMAC-chained .* but no audit key is configured"):
        AuditLog(tmp_path, fsync=False).open()


# ---- the key file -------------------------------------------------------------------------------------------


def key_file(tmp_path: Path, mode: int, data: bytes = KEY) -> Path:
    path = tmp_path / "audit.key"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_a_private_key_file_is_loaded(tmp_path: Path) -> None:
    assert load_key(key_file(tmp_path, 0o600)) == KEY
    assert load_key(key_file(tmp_path, 0o400)) == KEY


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    with pytest.raises(AuditKeyError, match=rf"has mode {mode:04o}: group or others may read or change it"):
        load_key(path)


def test_a_short_or_missing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match=f"holds 5 bytes; an audit key needs at least {MIN_KEY_BYTES}"):
        load_key(key_file(tmp_path, 0o600, b"short"))
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_key(tmp_path / "absent")


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    target = key_file(tmp_path, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(AuditKeyError, match="cannot be opened"):
        load_key(link)


def test_the_systemd_credential_is_the_default_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "fleetbus-audit-key").write_bytes(KEY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = load_settings(None, state_dir=tmp_path / "state")
    assert settings.audit_key_path() == credentials / "fleetbus-audit-key"
    explicit = load_settings(None, state_dir=tmp_path / "state", audit_key_file=tmp_path / "mine.key")
    assert explicit.audit_key_path() == tmp_path / "mine.key"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert load_settings(None, state_dir=tmp_path / "state").audit_key_path() is None


def run_fleetbus(tmp_path: Path, *argv: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETBUS_", "CREDENTIALS_DIRECTORY"))}
    env |= {"FLEETBUS_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT / "src")}
    if key is not None:
        env["FLEETBUS_AUDIT_KEY_FILE"] = str(key)
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", *argv],
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_the_server_refuses_to_start_with_a_key_in_the_wrong_mode(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o644)
    done = run_fleetbus(tmp_path, "serve", key=path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"fleetbus serve: error: audit key file {path} has mode 0644: group or others may read or change it, so it "
        f"would authenticate nothing; run `chmod 600 {path}` (only its owner may read it)"
    )
    assert not (tmp_path / "state" / "audit" / CURRENT).exists(), "nothing was written unauthenticated"


def test_audit_verify_uses_the_key_and_after_crash(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600)
    directory = tmp_path / "state" / "audit"
    keyed_log(directory, 4)
    assert run_fleetbus(tmp_path, "audit", "verify", key=path).returncode == 0
    chain = records(directory)
    head = (directory / HEAD).read_bytes()
    log = AuditLog(directory, fsync=False, key=KEY)
    log.append(entry(5))
    log.close()
    (directory / HEAD).write_bytes(head)  # as a crash between record 5 and its head leaves it
    done = run_fleetbus(tmp_path, "audit", "verify", key=path)
    assert done.returncode == 1
    assert "record 5 comes after record 4, the last one audit.head acknowledges" in done.stderr
    crashed = run_fleetbus(tmp_path, "audit", "verify", "--after-crash", key=path)
    assert crashed.returncode == 0, crashed.stderr
    assert "audit log intact: 5 records" in crashed.stdout
    # A forged record in place of record 5 is not excused by --after-crash.
    write_records(directory, [*chain, forge(chain[-1], entry(5))])
    assert run_fleetbus(tmp_path, "audit", "verify", "--after-crash", key=path).returncode == 1
