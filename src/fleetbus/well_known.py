"""The D-Bus and systemd names fleetbus speaks of, written once: dbus/, guard/, tools/ and the gateway share them.

A leaf module (it imports nothing), so every layer may use it without an arrow pointing up.
"""

from __future__ import annotations

DBUS = "org.freedesktop.DBus"
"""The bus daemon's own name and interface."""
DBUS_PATH = "/org/freedesktop/DBus"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"

SYSTEMD = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
SYSTEMD_MANAGER = "org.freedesktop.systemd1.Manager"
SYSTEMD_UNIT = "org.freedesktop.systemd1.Unit"
SYSTEMD_SERVICE = "org.freedesktop.systemd1.Service"
UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"

LOGIN1 = "org.freedesktop.login1"
LOGIN1_PATH = "/org/freedesktop/login1"
LOGIN1_MANAGER = "org.freedesktop.login1.Manager"
LOGIN1_SESSION = "org.freedesktop.login1.Session"

HOSTNAME1 = "org.freedesktop.hostname1"
HOSTNAME1_PATH = "/org/freedesktop/hostname1"

POLKIT = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_AUTHORITY = "org.freedesktop.PolicyKit1.Authority"
