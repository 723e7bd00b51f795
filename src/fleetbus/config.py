"""One settings model, read once at start from (strongest first) command-line flags, FLEETBUS_* variables,
the TOML configuration file, the standard D-Bus variables, and defaults — then passed down, never re-read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_CONFIG_FILE = Path("/etc/fleetbus/config.toml")
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
AUDIT_KEY_CREDENTIAL = "fleetbus-audit-key"
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""A stdio frame's limit: well above any real call (the fuzz sends 1 MB strings), far below the unit's MemoryMax."""


def default_state_dir() -> Path:
    """Where approvals and the audit log live: /var/lib/fleetbus for root, else the XDG state directory."""
    if os.geteuid() == 0:
        return Path("/var/lib/fleetbus")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fleetbus"


class PackSettings(BaseModel):
    """A tool pack: the methods of a service's interfaces offered as individual MCP tools."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,23}$", description="Prefix of the tool names, e.g. systemd1.")
    service: str = Field(min_length=1, max_length=255, description="Bus name, or a glob such as com.example.*.")
    bus: Literal["system", "session"] = "system"
    interfaces: list[str] = Field(default_factory=lambda: ["*"], min_length=1, description="Interface globs.")
    paths: list[str] = Field(
        default_factory=list, description="Objects to read; empty: walk the service's object tree (bounded)."
    )
    featured: list[str] = Field(
        default_factory=list, description="Members listed first, in this order, when the tool budget is tight."
    )


class JwtSettings(BaseModel):
    """JWTs from an external issuer, accepted on HTTP besides fleetbus's own tokens (`[jwt]` in the file)."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, description="The `iss` tokens must carry.")
    audience: str | None = Field(None, description="The `aud` tokens must carry (default: the server's MCP URL).")
    jwks_url: str | None = Field(None, description="The issuer's keys (default <issuer>/.well-known/jwks.json).")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    name_claim: str = Field("sub", description="The claim that names the client (as `jwt:<value>` in the audit log).")
    scope_claim: str = Field("scope", description="Scopes: a space-separated string or a list; others are ignored.")
    hosts_claim: str | None = Field(None, description="A claim listing host globs the token may touch.")


class HostSettings(BaseModel):
    """One host of the `[hosts]` table (`[hosts.web-01]`), for fleets too small to need an inventory file."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, min_length=1, description="Where to connect (default: the host's name).")
    port: int | None = Field(None, ge=1, le=65535, description="SSH port (default: SSH's own).")
    user: str | None = Field(None, min_length=1, description="SSH user (default: SSH's own).")
    identity_file: Path | None = Field(None, description="SSH private key (default: SSH's own).")
    groups: list[str] = Field(default_factory=list, description="Inventory groups the host belongs to.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Host variables, as in an inventory.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEETBUS_", extra="forbid", populate_by_name=True)

    system_bus: str = Field(
        DEFAULT_SYSTEM_BUS,
        validation_alias=AliasChoices("system_bus", "FLEETBUS_SYSTEM_BUS", "DBUS_SYSTEM_BUS_ADDRESS"),
        description="Address of the system bus.",
    )
    session_bus: str | None = Field(
        None,
        validation_alias=AliasChoices("session_bus", "FLEETBUS_SESSION_BUS", "DBUS_SESSION_BUS_ADDRESS"),
        description="Address of the session bus; without one, session-bus tools say so.",
    )
    call_timeout: float = Field(10.0, gt=0, description="Default deadline of a bus call, seconds.")
    max_call_timeout: float = Field(120.0, gt=0, description="Largest deadline a caller may ask for, seconds.")
    connect_timeout: float = Field(5.0, gt=0, description="Deadline for connecting to a bus, seconds.")
    introspection_max_age: float = Field(30.0, ge=0, description="How long cached introspection stays fresh.")
    introspection_cache_bytes: int = Field(
        16 * 1024 * 1024, ge=64 * 1024, description="Most memory the introspection cache holds (approximate bytes)."
    )
    signal_watches_per_client: int = Field(
        16, ge=1, le=256, description="Signal watches (wait_signal in progress) one client may hold at once."
    )
    signal_watches_max: int = Field(
        512, ge=1, description="Signal watches of all clients together, fleetbus's own tool packs included."
    )
    packs: list[PackSettings] = Field(
        default_factory=list,
        description="Tool packs besides the built-in ones (systemd1, login1, hostname1, timedate1, packagekit); "
        "a pack named like a built-in one replaces it.",
    )
    builtin_packs: bool = Field(True, description="Offer the built-in tool packs.")
    toolsets: list[str] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        description="Toolsets every client sees from the start: names (core, bus, units, host, guard, a pack's "
        "name), `default` (core, bus and the packs) or `all`; clients enable more with enable_toolset.",
    )
    tool_budget: int = Field(40, ge=1, le=1000, description="Most tools listed, built-in ones included.")
    tool_budget_chars: int = Field(
        16_000, ge=1000, description="Largest serialized tools/list (under 4,000 cl100k tokens); packs fill it last."
    )

    safety: Literal["readonly", "operator", "admin"] = Field(
        "readonly", description="Safety preset: readonly (reads only), operator (changes need approval), admin."
    )
    policy_file: Path | None = Field(None, description="TOML policy rules layered over the preset.")
    protected_units: list[str] = Field(default_factory=list, description="Units protected besides the built-ins.")
    state_dir: Path = Field(default_factory=default_state_dir, description="Approvals and audit log live here.")
    audit_dir: Path | None = Field(None, description="Audit log directory (default: <state_dir>/audit).")
    audit_max_bytes: int = Field(64 * 1024 * 1024, gt=4096, description="Rotate the audit log at this size.")
    audit_key_file: Path | None = Field(
        None,
        description="Key (a file only its owner, root, may read; ≥ 32 bytes) that makes the audit chain an HMAC chain "
        "and signs its head. Default: the systemd credential fleetbus-audit-key when the service has one.",
    )
    audit_retention_days: float | None = Field(
        None, gt=0, description="Remove rotated audit files whose last record is older (default: keep them all)."
    )
    audit_max_total_bytes: int | None = Field(
        None,
        gt=0,
        description="Remove the oldest rotated audit files while the log is larger than this (default: no limit). "
        "Each removal follows a checkpoint record, so `fleetbus audit verify` still proves the rest intact.",
    )
    audit_reserve_bytes: int = Field(
        1 << 20,
        ge=0,
        description="Free bytes the audit log's filesystem must have before a change runs (room for its outcome "
        "record); with less, changes are refused: 'the audit log cannot be written (disk full at PATH)'.",
    )
    audit_coalesce_interval: float = Field(
        10.0,
        ge=0,
        description="Seconds over which repeated refusals and rate-limit hits of one operation by one client are one "
        "record with a count (the first is written at once); 0 records each on its own.",
    )
    audit_journal: bool = Field(True, description="Mirror audit records to journald when its socket is there.")
    journal_socket: Path = Field(Path("/run/systemd/journal/socket"), description="journald's native socket.")
    journal_directory: Path | None = Field(
        None, description="Read the journal from this directory (journalctl --directory) instead of the system's."
    )
    approvals_dir: Path | None = Field(None, description="Approval store (default: <state_dir>/approvals).")
    approval_ttl: float = Field(900.0, gt=0, description="Seconds a person has to approve a request.")
    approvals_pending_per_client: int = Field(
        16, ge=1, le=10_000, description="Requests one client may have waiting for a person at once."
    )
    approvals_keep_days: float = Field(
        7.0, ge=0, description="Days a used, denied or expired request stays in the store before it is pruned."
    )
    read_rate: float = Field(100.0, gt=0, description="Reads per second per client, sustained.")
    read_burst: float = Field(500.0, ge=1, description="Reads per client allowed at once.")
    change_rate: float = Field(0.5, gt=0, description="Changes per second per client, sustained (0.5 = 30/min).")
    change_burst: float = Field(10.0, ge=1, description="Changes per client allowed at once.")

    # Serving (fleetbus serve --transport http|unix, and socket activation).
    listen: str = Field("127.0.0.1:8765", description="HOST:PORT of the HTTP transport.")
    socket_path: Path | None = Field(
        None, description="Unix socket (default /run/fleetbus/fleetbus.sock, or in $XDG_RUNTIME_DIR when not root)."
    )
    socket_group: str | None = Field(None, description="Make the unix socket 0660 for this group (default 0600).")
    tokens_file: Path | None = Field(
        None, description="Hashes of HTTP bearer tokens (default <state_dir>/tokens.json)."
    )
    peer_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Unix-socket peers by uid, user name or '*': their scopes. Unmapped: root and the server's own "
        "user are unrestricted, others get read.",
    )
    anonymous_scopes: list[str] = Field(["read"], description="Scopes of HTTP clients under --insecure-no-auth.")
    http_allowed_hosts: list[str] = Field(
        default_factory=list, description="Host headers HTTP accepts besides loopback names (e.g. behind a proxy)."
    )
    shutdown_timeout: float = Field(20.0, gt=0, description="Seconds a stop lets calls in flight finish.")
    http_max_connections: int = Field(
        512, ge=1, description="Most HTTP connections open at once (keep it well under LimitNOFILE)."
    )
    http_max_unauthenticated: int = Field(
        64, ge=1, description="Most HTTP connections open at once that have not yet shown a valid token."
    )
    http_header_timeout: float = Field(
        10.0, gt=0, le=3600, description="Seconds to send a request's head (after connecting or a response)."
    )
    http_body_timeout: float = Field(30.0, gt=0, le=3600, description="Seconds a request has to send its body.")
    resource_subscriptions_per_session: int = Field(
        64, ge=1, le=10_000, description="Most resources/subscribe one session (connection) may hold."
    )
    http_sessions_max: int = Field(256, ge=1, description="Most handshake-era HTTP sessions open at once, in all.")
    http_sessions_per_client: int = Field(
        16, ge=1, description="Most HTTP sessions one token (or socket peer) keeps; a new one evicts its idlest."
    )
    http_session_idle_minutes: float = Field(
        10.0, gt=0, le=24 * 60, description="Minutes without a request after which an HTTP session ends."
    )
    max_frame_bytes: int = Field(
        DEFAULT_MAX_FRAME_BYTES,
        ge=65536,
        description="Longest stdio frame (one JSON-RPC message) accepted, bytes; a longer one is refused, unread.",
    )
    jwt: JwtSettings | None = Field(None, description="Also accept JWTs from this issuer on HTTP.")

    # Hosts (F9): read by fleetbus.hosts.inventory.load_inventory(inventory, hosts) when the server starts.
    inventory: Path | None = Field(
        None, description="Ansible inventory: INI, YAML (.yml/.yaml) or the JSON of `ansible-inventory --list` (.json)."
    )
    hosts: dict[str, HostSettings] = Field(
        default_factory=dict, description="Hosts named in this file ([hosts.NAME]), besides the inventory's."
    )
    ssh_config: Path | None = Field(
        None,
        description="OpenSSH client config for reaching hosts (Host aliases, HostName, User, ProxyJump…); "
        "default ~/.ssh/config.",
    )
    known_hosts: Path | None = Field(
        None,
        description="The known_hosts file host keys are checked against (and `fleetbus hosts trust` adds to); "
        "default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.",
    )
    ssh_key: Path | None = Field(
        None, description="SSH private key for hosts whose inventory entry names none (default: SSH's own)."
    )
    ssh_bus_forwarding: bool = Field(
        True,
        description="Reach a host's system bus by stream-local forwarding to /run/dbus/system_bus_socket where "
        "its sshd allows it (no process on the host, the fastest path); false: always through "
        "systemd-stdio-bridge, as `busctl -H` does (a named command in the host's sshd log).",
    )
    max_connected_hosts: int = Field(
        64,
        ge=1,
        le=4096,
        description="Most hosts connected at once (each holds a socket, relays, channels: the fd "
        "budget); the least recently used idle one is closed to make room.",
    )
    fanout_concurrency: int = Field(
        64, ge=1, le=4096, description="Hosts a fan-out (hosts=PATTERN, rolling_unit_job) works on at once."
    )
    fanout_host_timeout: float = Field(
        10.0, gt=0, le=120, description="Default seconds per host of a fan-out (per_host_timeout overrides)."
    )
    fanout_timeout: float = Field(
        30.0, gt=0, le=600, description="Default seconds for a whole fan-out (overall_timeout overrides)."
    )

    @model_validator(mode="after")
    def _deadlines_agree(self) -> Settings:
        if self.call_timeout > self.max_call_timeout:
            raise ValueError(f"call_timeout ({self.call_timeout}) exceeds max_call_timeout ({self.max_call_timeout})")
        if self.audit_max_total_bytes is not None and self.audit_max_total_bytes < 2 * self.audit_max_bytes:
            raise ValueError(
                f"audit_max_total_bytes ({self.audit_max_total_bytes}) must be at least twice audit_max_bytes "
                f"({self.audit_max_bytes}): the current file alone may grow to audit_max_bytes"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags over environment over file. The standard DBUS_* variables sit among the environment
        # aliases but after FLEETBUS_*, so an explicit FLEETBUS_SYSTEM_BUS wins.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    @property
    def tokens_path(self) -> Path:
        return self.tokens_file or self.state_dir / "tokens.json"

    @property
    def audit_directory(self) -> Path:
        return self.audit_dir or self.state_dir / "audit"

    def audit_key_path(self) -> Path | None:
        """The audit key's file: audit_key_file, else the systemd credential `fleetbus-audit-key`
        (LoadCredential=fleetbus-audit-key:/etc/fleetbus/audit.key puts it in $CREDENTIALS_DIRECTORY)."""
        if self.audit_key_file is not None:
            return self.audit_key_file
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if credentials:
            candidate = Path(credentials) / AUDIT_KEY_CREDENTIAL
            if candidate.exists():
                return candidate
        return None

    @property
    def approvals_directory(self) -> Path:
        return self.approvals_dir or self.state_dir / "approvals"

    def approvals_location(self) -> tuple[str, ...]:
        """The options that lead `fleetbus approve` from a plain shell to this store: none for the default one."""
        if self.approvals_dir is not None:
            return ("--approvals-dir", str(self.approvals_dir.absolute()))
        if self.state_dir.absolute() != default_state_dir():
            return ("--state-dir", str(self.state_dir.absolute()))
        return ()

    def names_approvals_location(self) -> bool:
        """Whether flags, the environment or the file said where the approval store is (else: the default)."""
        return bool({"state_dir", "approvals_dir"} & self.model_fields_set)

    def bus_addresses(self) -> dict[str, str]:
        addresses = {"system": self.system_bus}
        if self.session_bus:
            addresses["session"] = self.session_bus
        return addresses


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config_file` (or /etc/fleetbus/config.toml when present) plus environment and flags."""
    chosen = config_file if config_file is not None else (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    if chosen is not None and not chosen.is_file():
        raise ValueError(f"configuration file {chosen} does not exist")

    class FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=chosen)

    given = {key: value for key, value in overrides.items() if value is not None}
    return FromFile(**given)
