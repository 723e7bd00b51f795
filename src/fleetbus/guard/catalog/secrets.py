"""Where secrets travel in arguments the catalog knows: environment assignments, unit credentials, connection
secrets. The audit log hides them by this knowledge (guard/redact.py); a key name alone would miss
`SetEnvironment(["DB_PASSWORD=…"])`, whose secret sits in a list element, not under a key."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SecretKind(enum.Enum):
    """How a secret sits in one argument."""

    WHOLE = "whole"
    """The argument is the secret."""
    ASSIGNMENTS = "assignments"
    """`KEY=VALUE` strings (an environment): the keys stay, every value is hidden."""
    UNIT_PROPERTIES = "unit-properties"
    """systemd unit properties `a(sv)`: the values of the secret-bearing ones (SECRET_UNIT_PROPERTIES)."""
    AUX_UNITS = "aux-units"
    """StartTransientUnit's auxiliary units `a(sa(sv))`: each one's properties as UNIT_PROPERTIES."""
    CONNECTION_SETTINGS = "connection-settings"
    """NetworkManager connection settings `a{sa{sv}}`: the secret keys of each setting (CONNECTION_SECRETS)."""


@dataclass(frozen=True)
class SecretArg:
    index: int
    kind: SecretKind


SECRET_UNIT_PROPERTIES = {
    "Environment": SecretKind.ASSIGNMENTS,
    "SetCredential": SecretKind.WHOLE,
    "SetCredentialEncrypted": SecretKind.WHOLE,
    "LogExtraFields": SecretKind.ASSIGNMENTS,
}
"""Unit properties whose values carry secrets: an environment, credential blobs (`a(say)`: id and data, hidden
whole)."""

CONNECTION_SECRETS = frozenset(
    {
        "psk",
        "password",
        "password-raw",
        "pin",
        "puk",
        "leap-password",
        "private-key",
        "private-key-password",
        "phase2-private-key",
        "phase2-private-key-password",
        "ca-cert-password",
        "client-cert-password",
        "phase2-ca-cert-password",
        "phase2-client-cert-password",
        "wep-key0",
        "wep-key1",
        "wep-key2",
        "wep-key3",
        "secrets",
        "preshared-key",
        "pairing-key",
    }
)
"""NetworkManager setting keys that hold secrets (802-11-wireless-security psk, 802-1x password, vpn secrets, a
WireGuard private-key or peer preshared-key…)."""
