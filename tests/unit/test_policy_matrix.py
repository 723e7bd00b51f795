"""The policy matrix of the F2 guard issue: presets × catalog members × protected units × argument matchers × host
globs, each case an operation and the exact verdict (and deciding rule) the guard must reach.

The expectations are written from the issue's rules, not computed from the presets, so a change to a preset or
the catalog that breaks a promise fails here by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetbus.guard.catalog import Hints, Risk, classify
from fleetbus.guard.policy import Decision, Policy, Verdict, load_policy
from fleetbus.operation import DBUS_CALL, DBUS_WATCH, Operation

ALLOW, CONFIRM, DENY = Verdict.ALLOW, Verdict.CONFIRM, Verdict.DENY
PRESETS = ("readonly", "operator", "admin")

SD = "org.freedesktop.systemd1"
SD_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
LOGIN = "org.freedesktop.login1"
LOGIN_MANAGER = "org.freedesktop.login1.Manager"
PROPERTIES = "org.freedesktop.DBus.Properties"
SECRETS = "org.freedesktop.secrets"
PK = "org.freedesktop.PackageKit"
PK_TX = "org.freedesktop.PackageKit.Transaction"


def call(
    destination: str, path: str, interface: str, member: str, *args: Any, host: str = "local", bus: str = "system"
) -> Operation:
    return Operation(DBUS_CALL, host, bus, destination, path, interface, member, "", tuple(args))


def manager(member: str, *args: Any, host: str = "local") -> Operation:
    return call(SD, SD_PATH, MANAGER, member, *args, host=host)


def unit_object(unit_path: str, member: str, *args: Any, interface: str = UNIT) -> Operation:
    return call(SD, f"{SD_PATH}/unit/{unit_path}", interface, member, *args)


# ---- what each risk class gets under each preset, as the issue states it ------------------------------------

BY_RISK: dict[Risk, dict[str, tuple[Verdict, str]]] = {
    Risk.READ: {p: (ALLOW, f"{p}:read") for p in PRESETS},
    Risk.ROUTINE: {
        "readonly": (DENY, "default-deny"),
        "operator": (CONFIRM, "operator:routine"),
        "admin": (ALLOW, "admin:routine"),
    },
    Risk.UNKNOWN: {
        "readonly": (DENY, "default-deny"),
        "operator": (CONFIRM, "operator:unknown"),
        "admin": (CONFIRM, "admin:unknown"),
    },
    Risk.DANGEROUS: {
        "readonly": (DENY, "default-deny"),
        "operator": (DENY, "operator:dangerous"),
        "admin": (CONFIRM, "admin:dangerous"),
    },
    Risk.SECRET: {p: (DENY, f"{p}:secret") for p in PRESETS},
}

# ---- catalog members: (case name, operation, hints, expected risk) -------------------------------------------

R, C, U, D, S = Risk.READ, Risk.ROUTINE, Risk.UNKNOWN, Risk.DANGEROUS, Risk.SECRET
LOGIN_PATH = "/org/freedesktop/login1"
SECRET_PATH = "/org/freedesktop/secrets"
NO_HINTS = None

CATALOG_CASES: list[tuple[str, Operation, Hints | None, Risk]] = [
    # reads
    ("DBus.ListNames", call("org.freedesktop.DBus", "/", "org.freedesktop.DBus", "ListNames"), NO_HINTS, R),
    ("Introspect", call(SD, SD_PATH, "org.freedesktop.DBus.Introspectable", "Introspect"), NO_HINTS, R),
    ("Peer.Ping", call(SD, SD_PATH, "org.freedesktop.DBus.Peer", "Ping"), NO_HINTS, R),
    ("Properties.Get", call(SD, SD_PATH, PROPERTIES, "Get", MANAGER, "Version"), NO_HINTS, R),
    ("Properties.GetAll", call(SD, SD_PATH, PROPERTIES, "GetAll", MANAGER), NO_HINTS, R),
    ("GetManagedObjects", call(SD, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"), NO_HINTS, R),
    ("systemd.ListUnits", manager("ListUnits"), NO_HINTS, R),
    ("systemd.GetUnit", manager("GetUnit", "web-1.service"), NO_HINTS, R),
    ("systemd.Subscribe", manager("Subscribe"), NO_HINTS, R),
    ("login1.ListSessions", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "ListSessions"), NO_HINTS, R),
    ("login1.CanPowerOff", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "CanPowerOff"), NO_HINTS, R),
    ("hostname1.Describe", call("org.freedesktop.hostname1", "/", "org.freedesktop.hostname1", "Describe"), None, R),
    (
        "polkit.CheckAuthorization",
        call("org.freedesktop.PolicyKit1", "/", "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization"),
        NO_HINTS,
        R,
    ),
    ("Secret.SearchItems", call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "SearchItems"), None, R),
    ("PackageKit.Resolve", call(PK, "/1", PK_TX, "Resolve", 0, ["bash"]), NO_HINTS, R),
    (
        "resolve1.ResolveHostname",
        call("org.freedesktop.resolve1", "/", "org.freedesktop.resolve1.Manager", "ResolveHostname"),
        NO_HINTS,
        R,
    ),
    ("watch-signals", Operation(DBUS_WATCH, "local", destination=SD, member="JobRemoved"), NO_HINTS, R),
    # routine changes
    ("systemd.StartUnit", manager("StartUnit", "web-1.service", "replace"), NO_HINTS, C),
    ("systemd.StopUnit", manager("StopUnit", "web-1.service", "replace"), NO_HINTS, C),
    ("systemd.RestartUnit", manager("RestartUnit", "web-1.service", "replace"), NO_HINTS, C),
    ("systemd.ReloadUnit", manager("ReloadUnit", "web-1.service", "replace"), NO_HINTS, C),
    ("systemd.KillUnit", manager("KillUnit", "web-1.service", "all", 15), NO_HINTS, C),
    ("systemd.ResetFailedUnit", manager("ResetFailedUnit", "web-1.service"), NO_HINTS, C),
    ("systemd.EnableUnitFiles", manager("EnableUnitFiles", ["web-1.service"], False, False), NO_HINTS, C),
    ("systemd.DisableUnitFiles", manager("DisableUnitFiles", ["web-1.service"], False), NO_HINTS, C),
    ("systemd.Reload", manager("Reload"), NO_HINTS, C),
    ("systemd.EnqueueUnitJob-restart", manager("EnqueueUnitJob", "web-1.service", "restart", "replace"), None, C),
    ("Unit.Restart-by-path", unit_object("web_2d1_2eservice", "Restart", "replace"), NO_HINTS, C),
    ("login1.LockSession", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "LockSession", "3"), NO_HINTS, C),
    (
        "hostname1.SetStaticHostname",
        call("org.freedesktop.hostname1", "/", "org.freedesktop.hostname1", "SetStaticHostname", "h", False),
        NO_HINTS,
        C,
    ),
    (
        "timedate1.SetTimezone",
        call("org.freedesktop.timedate1", "/", "org.freedesktop.timedate1", "SetTimezone", "UTC", False),
        NO_HINTS,
        C,
    ),
    ("PackageKit.RefreshCache", call(PK, "/1", PK_TX, "RefreshCache", False), NO_HINTS, C),
    ("Secret.Lock", call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "Lock", []), NO_HINTS, C),
    (
        "Properties.Set-session-bus",
        call("org.example.App", "/", PROPERTIES, "Set", "org.example.App", "Theme", "dark", bus="session"),
        NO_HINTS,
        C,
    ),
    # dangerous
    ("systemd.StartTransientUnit", manager("StartTransientUnit", "run-x.service", "fail", [], []), NO_HINTS, D),
    ("systemd.SetUnitProperties", manager("SetUnitProperties", "web-1.service", True, []), NO_HINTS, D),
    ("systemd.KExec", manager("KExec"), NO_HINTS, D),
    ("systemd.PowerOff", manager("PowerOff"), NO_HINTS, D),
    ("systemd.Reboot", manager("Reboot"), NO_HINTS, D),
    ("systemd.Halt", manager("Halt"), NO_HINTS, D),
    ("systemd.SetEnvironment", manager("SetEnvironment", ["LD_PRELOAD=/x.so"]), NO_HINTS, D),
    ("systemd.MaskUnitFiles", manager("MaskUnitFiles", ["web-1.service"], False, False), NO_HINTS, D),
    ("systemd.EnqueueMarkedJobs", manager("EnqueueMarkedJobs"), NO_HINTS, D),
    ("systemd.AttachProcessesToUnit", manager("AttachProcessesToUnit", "web-1.service", "/", [1234]), None, D),
    ("systemd.StartUnit-reboot.target", manager("StartUnit", "reboot.target", "replace"), NO_HINTS, D),
    ("systemd.StartUnit-isolate", manager("StartUnit", "multi-user.target", "isolate"), NO_HINTS, D),
    ("systemd.RestartUnit-poweroff.target", manager("RestartUnit", "poweroff.target", "replace"), NO_HINTS, D),
    ("systemd.StartUnitReplace-isolate", manager("StartUnitReplace", "a.target", "b.target", "isolate"), None, D),
    ("systemd.SetDefaultTarget-reboot", manager("SetDefaultTarget", "reboot.target", True), NO_HINTS, D),
    ("systemd.EnqueueUnitJob-reboot", manager("EnqueueUnitJob", "reboot.target", "start", "replace"), None, D),
    ("Unit.Start-isolate", unit_object("rescue_2etarget", "Start", "isolate"), NO_HINTS, D),
    ("login1.PowerOff", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "PowerOff", False), NO_HINTS, D),
    ("login1.Reboot", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "Reboot", False), NO_HINTS, D),
    ("login1.Suspend", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "Suspend", False), NO_HINTS, D),
    ("login1.KillSession", call(LOGIN, LOGIN_PATH, LOGIN_MANAGER, "KillSession", "3", "all", 9), NO_HINTS, D),
    (
        "timedate1.SetTime",
        call("org.freedesktop.timedate1", "/", "org.freedesktop.timedate1", "SetTime", 0, False, False),
        NO_HINTS,
        D,
    ),
    ("PackageKit.InstallPackages", call(PK, "/1", PK_TX, "InstallPackages", 0, ["nc;1;x86_64;deb"]), NO_HINTS, D),
    ("PackageKit.RemovePackages", call(PK, "/1", PK_TX, "RemovePackages", 0, ["bash"], True, True), NO_HINTS, D),
    ("Properties.Set-system-bus", call(SD, SD_PATH, PROPERTIES, "Set", MANAGER, "LogLevel", "debug"), None, D),
    # secrets
    (
        "Secret.GetSecrets",
        call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "GetSecrets", [], "/s"),
        None,
        S,
    ),
    ("Secret.OpenSession", call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "OpenSession"), None, S),
    ("Secret.Item.GetSecret", call(SECRETS, "/i", "org.freedesktop.Secret.Item", "GetSecret", "/s"), NO_HINTS, S),
    ("Secret.GetSecrets-no-interface", call(SECRETS, SECRET_PATH, "", "GetSecrets", [], "/s"), NO_HINTS, S),
    # unknown: never a read, whatever the name says
    ("unknown.GetThing", call("com.example.Foo", "/", "com.example.Foo", "GetThing"), NO_HINTS, U),
    ("unknown.ListAll", call("com.example.Foo", "/", "com.example.Foo", "ListAll"), NO_HINTS, U),
    ("systemd.unlisted-member", manager("FrobnicateUnits", "yes"), NO_HINTS, U),
    ("Properties.nonstandard", call(SD, SD_PATH, PROPERTIES, "Frobnicate"), NO_HINTS, U),
    ("kind.unknown", Operation("exec.run", "local", args=("rm", "-rf", "/")), NO_HINTS, U),
    ("no-interface.unknown-member", call("com.example.Foo", "/", "", "Ping2"), NO_HINTS, U),
    # hints raise a read, never lower anything
    ("hint.privileged-read", call("com.example.Foo", "/", "com.example.Foo", "GetThing"), Hints(privileged=True), U),
    ("hint.privileged-systemd-read", manager("ListUnits"), Hints(privileged=True), C),
    ("hint.no-reply-read", manager("GetUnit", "web-1.service"), Hints(no_reply=True), C),
    ("hint.on-dangerous", manager("PowerOff"), Hints(privileged=True, no_reply=True), D),
    ("hint.on-secret", call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "GetSecrets"), Hints(True), S),
]


BUS_DAEMON = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
OWN_CONNECTION: list[tuple[str, Operation]] = [
    ("DBus.AddMatch-signal", call(*BUS_DAEMON, "AddMatch", "type='signal'")),
    ("DBus.AddMatch-eavesdrop", call(*BUS_DAEMON, "AddMatch", "eavesdrop='true'")),
    ("DBus.RemoveMatch", call(*BUS_DAEMON, "RemoveMatch", "type='signal'")),
    ("DBus.RequestName", call(*BUS_DAEMON, "RequestName", "x", 0)),
    ("DBus.ReleaseName", call(*BUS_DAEMON, "ReleaseName", "x")),
    ("DBus.Hello", call(*BUS_DAEMON, "Hello")),
    ("DBus.AddMatch-no-interface", call(BUS_DAEMON[0], BUS_DAEMON[1], "", "AddMatch", "type='signal'")),
    ("Monitoring.BecomeMonitor", call(*BUS_DAEMON[:2], "org.freedesktop.DBus.Monitoring", "BecomeMonitor", [], 0)),
]
"""Members that change fleetbus's own connection, which every client shares: refused under every preset."""


# ---- protected units ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disruption:
    name: str
    build: Callable[[str], Operation]
    risk: Risk


def _escape(unit: str) -> str:
    return "".join(c if c.isalnum() else f"_{ord(c):02x}" for c in unit)


DISRUPTIONS = [
    Disruption("StopUnit", lambda u: manager("StopUnit", u, "replace"), C),
    Disruption("RestartUnit", lambda u: manager("RestartUnit", u, "replace"), C),
    Disruption("KillUnit", lambda u: manager("KillUnit", u, "all", 9), C),
    Disruption("DisableUnitFiles-array", lambda u: manager("DisableUnitFiles", ["web-1.service", u], False), C),
    Disruption("EnqueueUnitJob-stop", lambda u: manager("EnqueueUnitJob", u, "stop", "replace"), C),
    Disruption("Unit.Stop-by-path", lambda u: unit_object(_escape(u), "Stop", "replace"), C),
    Disruption("MaskUnitFiles", lambda u: manager("MaskUnitFiles", [u], False, False), D),
]

PROTECTED = (
    "dbus.service",
    "ssh.service",
    "sshd.service",
    "sshd@3-10.0.0.1:22-10.0.0.2:5000.service",
    "systemd-journald.service",
    "systemd-logind.service",
    "dbus-org.freedesktop.login1.service",
    "polkit.service",
    "fleetbus.service",
    "init.scope",
    "systemd-networkd.service",
    "NetworkManager.service",
    "networking.service",
    "-.slice",
    "system.slice",
    "user.slice",
    "postgresql.service",
)
"""The built-in protected units (a glob among them), and one the configuration adds."""

PROTECTED_RULE = {
    Risk.ROUTINE: {"readonly": "default-deny", "operator": "protected-units", "admin": "protected-units"},
    Risk.DANGEROUS: {"readonly": "default-deny", "operator": "operator:dangerous", "admin": "protected-units"},
}

HARMLESS_TO_PROTECTED: list[tuple[str, Callable[[str], Operation]]] = [
    ("StartUnit", lambda u: manager("StartUnit", u, "replace")),
    ("ReloadUnit", lambda u: manager("ReloadUnit", u, "replace")),
    ("ResetFailedUnit", lambda u: manager("ResetFailedUnit", u)),
]


# ---- policy files layered over the presets -------------------------------------------------------------------

POLICY_FILES = {
    "workers": """
[[rule]]
name = "restart-workers"
verdict = "allow"
reason = "automated remediation may restart workers"
interface = "org.freedesktop.systemd1.Manager"
member = "RestartUnit"
args = {0 = "worker-*.service"}

[[rule]]
name = "disable-workers"
verdict = "allow"
reason = "workers may be disabled"
member = "DisableUnitFiles"
args = {0 = "worker-*.service"}
""",
    "protected": """
protected_units = ["postgresql.service"]

[[rule]]
name = "stop-sshd"
verdict = "allow"
reason = "this host moves sshd to a socket"
member = "StopUnit"
args = {0 = "sshd.service"}

[[rule]]
name = "stop-ssh-anything"
verdict = "allow"
reason = "a glob never names a protected unit"
member = "StopUnit"
args = {0 = "ssh*"}

[[rule]]
name = "restart-ssh-by-path"
verdict = "allow"
reason = "ssh may be restarted through its own object"
path = "/org/freedesktop/systemd1/unit/ssh_2eservice"
interface = "org.freedesktop.systemd1.Unit"
member = "Restart"

[[rule]]
name = "restart-any-unit-object"
verdict = "allow"
reason = "a path glob never names a protected unit"
path = "/org/freedesktop/systemd1/unit/*"
interface = "org.freedesktop.systemd1.Unit"
member = "Restart"

[[rule]]
name = "disable-ssh-and-dbus"
verdict = "confirm"
reason = "both named, exactly"
member = "DisableUnitFiles"
args = {0 = ["sshd.service", "dbus.service"]}
""",
    "hosts": """
[[rule]]
name = "web-restarts"
verdict = "allow"
reason = "web hosts restart freely"
hosts = "web-*"
member = "RestartUnit"

[[rule]]
name = "web-9-frozen"
verdict = "deny"
reason = "web-9 is being migrated"
hosts = "web-9"
member = "RestartUnit"

[[rule]]
name = "db-frozen"
verdict = "deny"
reason = "databases are restarted by the DBAs"
hosts = ["db-1", "db-2"]
member = "RestartUnit"

[[rule]]
name = "lab-dangerous"
verdict = "confirm"
reason = "lab machines may be rebooted with approval"
hosts = "lab-*"
risk = ["dangerous"]
""",
    "ties": """
[[rule]]
name = "allow-restart-by-interface"
verdict = "allow"
reason = "equally specific as the next rule"
interface = "org.freedesktop.systemd1.Manager"
member = "RestartUnit"

[[rule]]
name = "deny-restart-by-destination"
verdict = "deny"
reason = "equally specific as the previous rule"
destination = "org.freedesktop.systemd1"
member = "RestartUnit"

[[rule]]
name = "allow-reload-by-interface"
verdict = "allow"
reason = "ties with a confirm"
interface = "org.freedesktop.systemd1.Manager"
member = "ReloadUnit"

[[rule]]
name = "confirm-reload-by-destination"
verdict = "confirm"
reason = "ties with an allow"
destination = "org.freedesktop.systemd1"
member = "ReloadUnit"

[[rule]]
name = "no-systemd-getters"
verdict = "deny"
reason = "a glob is less specific than an exact name"
interface = "org.freedesktop.systemd1.Manager"
member = "Get*"

[[rule]]
name = "get-unit-ok"
verdict = "allow"
reason = "exact member beats the glob"
interface = "org.freedesktop.systemd1.Manager"
member = "GetUnit"

[[rule]]
name = "no-list-jobs"
verdict = "deny"
reason = "a file can tighten a preset"
member = "ListJobs"
""",
    "args": """
[[rule]]
name = "no-sigkill"
verdict = "deny"
reason = "SIGKILL loses data"
interface = "org.freedesktop.systemd1.Manager"
member = "KillUnit"
args = {2 = 9}

[[rule]]
name = "batch-replace"
verdict = "allow"
reason = "batch jobs start in replace mode"
member = "StartUnit"
args = {0 = "batch-*.service", 1 = "replace"}

[[rule]]
name = "runtime-enable"
verdict = "allow"
reason = "runtime-only enables are harmless"
member = "EnableUnitFiles"
args = {1 = true}

[[rule]]
name = "session-properties"
verdict = "allow"
reason = "session settings are the user's"
bus = "session"
interface = "org.freedesktop.DBus.Properties"
member = "Set"
""",
}


@dataclass(frozen=True)
class Case:
    policy: str
    """A preset name, or "<preset>+<policy file>"."""
    operation: Operation
    verdict: Verdict
    rule: str | None
    risk: Risk | None = None
    hints: Hints | None = None


def _cases() -> Iterator[Any]:
    def case(case_id: str, *args: Any, **kwargs: Any) -> Any:
        return pytest.param(Case(*args, **kwargs), id=case_id)

    for name, operation, hints, risk in CATALOG_CASES:
        for preset in PRESETS:
            verdict, rule = BY_RISK[risk][preset]
            yield case(f"catalog/{name}/{preset}", preset, operation, verdict, rule, risk, hints)

    for name, operation in OWN_CONNECTION:
        for preset in PRESETS:
            yield case(f"own-connection/{name}/{preset}", preset, operation, DENY, "own-connection", Risk.DANGEROUS)

    for unit in PROTECTED:
        for disruption in DISRUPTIONS:
            for preset in PRESETS:
                rule = PROTECTED_RULE[disruption.risk][preset]
                yield case(
                    f"protected/{unit}/{disruption.name}/{preset}",
                    preset,
                    disruption.build(unit),
                    DENY,
                    rule,
                    disruption.risk,
                )
        for action, build in HARMLESS_TO_PROTECTED:
            # Starting, reloading or clearing a failed state never cuts anything off.
            verdict, rule = BY_RISK[Risk.ROUTINE]["admin"]
            yield case(f"protected/{unit}/{action}/admin", "admin", build(unit), verdict, rule, Risk.ROUTINE)

    # Named cases of the "Done means".
    for preset in PRESETS:
        yield case(
            f"named/GetSecrets-denied/{preset}",
            preset,
            call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "GetSecrets", ["/i/1"], "/s/1"),
            DENY,
            f"{preset}:secret",
            Risk.SECRET,
        )
    yield case(
        "named/StopUnit-dbus/admin", "admin", manager("StopUnit", "dbus.service", "replace"), DENY, "protected-units"
    )
    for preset, verdict, rule in (
        ("readonly", DENY, "default-deny"),
        ("operator", CONFIRM, "operator:routine"),
        ("admin", ALLOW, "admin:routine"),
    ):
        yield case(
            f"named/RestartUnit-ordinary/{preset}",
            preset,
            manager("RestartUnit", "nginx.service", "replace"),
            verdict,
            rule,
            Risk.ROUTINE,
        )
    for preset in PRESETS:
        yield case(
            f"named/caller-own-unit-empty-name/{preset}",
            preset,
            manager("StopUnit", "", "replace"),
            DENY,
            PROTECTED_RULE[Risk.ROUTINE][preset],
        )
    yield case(
        "named/caller-own-unit-self-path/admin",
        "admin",
        unit_object("self", "Stop", "replace"),
        DENY,
        "protected-units",
    )
    yield case(
        "named/no-interface-StopUnit-sshd/admin",
        "admin",
        call(SD, SD_PATH, "", "StopUnit", "sshd.service", "replace"),
        DENY,
        "protected-units",
        Risk.UNKNOWN,
    )
    yield case(
        "named/LinkUnitFiles-path-of-protected/admin",
        "admin",
        manager("LinkUnitFiles", ["/tmp/evil/sshd.service"], False, True),
        DENY,
        "protected-units",
        Risk.DANGEROUS,
    )
    yield case(
        "named/audit-query/readonly",
        "readonly",
        Operation("audit.query", "local", member="query"),
        DENY,
        "readonly:audit",
    )
    yield case(
        "named/audit-query/operator",
        "operator",
        Operation("audit.query", "local", member="query"),
        DENY,
        "operator:audit",
    )
    yield case(
        "named/audit-query/admin", "admin", Operation("audit.query", "local", member="query"), ALLOW, "admin:audit"
    )

    # Argument matchers: the worker rule of the issue.
    worker, web = "worker-3.service", "web-1.service"
    for preset, web_verdict, web_rule in (
        ("readonly", DENY, "default-deny"),
        ("operator", CONFIRM, "operator:routine"),
        ("admin", ALLOW, "admin:routine"),
    ):
        policy = f"{preset}+workers"
        yield case(
            f"args/worker-rule/{worker}/{preset}",
            policy,
            manager("RestartUnit", worker, "replace"),
            ALLOW,
            "restart-workers",
        )
        yield case(
            f"args/worker-rule/{web}/{preset}", policy, manager("RestartUnit", web, "replace"), web_verdict, web_rule
        )
        yield case(
            f"args/worker-rule/StopUnit-not-covered/{preset}",
            policy,
            manager("StopUnit", worker, "replace"),
            web_verdict,
            web_rule,
        )
    yield case(
        "args/worker-rule/prefix-is-not-a-match/operator",
        "operator+workers",
        manager("RestartUnit", "my-worker-3.service", "replace"),
        CONFIRM,
        "operator:routine",
    )
    yield case(
        "args/array-all-elements-match/operator",
        "operator+workers",
        manager("DisableUnitFiles", ["worker-1.service", "worker-2.service"], False),
        ALLOW,
        "disable-workers",
    )
    yield case(
        "args/array-one-element-differs/operator",
        "operator+workers",
        manager("DisableUnitFiles", ["worker-1.service", "web-1.service"], False),
        CONFIRM,
        "operator:routine",
    )
    yield case(
        "args/array-smuggles-protected/admin",
        "admin+workers",
        manager("DisableUnitFiles", ["worker-1.service", "sshd.service"], False),
        DENY,
        "protected-units",
    )
    for signal, verdict, rule in ((9, DENY, "no-sigkill"), (15, ALLOW, "admin:routine")):
        yield case(
            f"args/exact-int/signal-{signal}/admin",
            "admin+args",
            manager("KillUnit", "web-1.service", "all", signal),
            verdict,
            rule,
        )
    for mode, verdict, rule in (("replace", ALLOW, "batch-replace"), ("fail", CONFIRM, "operator:routine")):
        yield case(
            f"args/two-matchers/mode-{mode}/operator",
            "operator+args",
            manager("StartUnit", "batch-7.service", mode),
            verdict,
            rule,
        )
    yield case(
        "args/missing-argument-never-matches/operator",
        "operator+args",
        manager("StartUnit", "batch-7.service"),
        CONFIRM,
        "operator:routine",
    )
    for runtime, verdict, rule in ((True, ALLOW, "runtime-enable"), (False, CONFIRM, "operator:routine")):
        yield case(
            f"args/exact-bool-{runtime}/operator",
            "operator+args",
            manager("EnableUnitFiles", ["web-1.service"], runtime, False),
            verdict,
            rule,
        )
    session_set = call("org.example.App", "/", PROPERTIES, "Set", "org.example.App", "Theme", "dark", bus="session")
    system_set = call(SD, SD_PATH, PROPERTIES, "Set", MANAGER, "LogLevel", "debug")
    yield case("args/bus-session-rule/session/readonly", "readonly+args", session_set, ALLOW, "session-properties")
    yield case("args/bus-session-rule/system/readonly", "readonly+args", system_set, DENY, "default-deny")
    yield case("args/bus-session-rule/system/admin", "admin+args", system_set, CONFIRM, "admin:dangerous")

    # Protected units named by rules: exactly lifts protection, a glob does not.
    for preset in PRESETS:
        policy = f"{preset}+protected"
        yield case(
            f"named-unit/exact-arg-lifts/{preset}",
            policy,
            manager("StopUnit", "sshd.service", "replace"),
            ALLOW,
            "stop-sshd",
        )
        yield case(
            f"named-unit/glob-arg-does-not/{preset}",
            policy,
            manager("StopUnit", "ssh.service", "replace"),
            DENY,
            "protected-units",
        )
        yield case(
            f"named-unit/exact-path-lifts/{preset}",
            policy,
            unit_object("ssh_2eservice", "Restart", "replace"),
            ALLOW,
            "restart-ssh-by-path",
        )
        yield case(
            f"named-unit/glob-path-does-not/{preset}",
            policy,
            unit_object("dbus_2eservice", "Restart", "replace"),
            DENY,
            "protected-units",
        )
        yield case(
            f"named-unit/glob-path-ordinary-unit/{preset}",
            policy,
            unit_object("web_2d1_2eservice", "Restart", "replace"),
            ALLOW,
            "restart-any-unit-object",
        )
        yield case(
            f"named-unit/exact-list-value-names-each/{preset}",
            policy,
            manager("DisableUnitFiles", ["sshd.service", "dbus.service"]),
            CONFIRM,
            "disable-ssh-and-dbus",
        )
        yield case(
            f"named-unit/file-protects-postgresql/{preset}",
            policy,
            manager("RestartUnit", "postgresql.service", "replace"),
            DENY,
            PROTECTED_RULE[Risk.ROUTINE][preset],
        )

    # Host globs.
    for host, verdict, rule in (
        ("web-1", ALLOW, "web-restarts"),
        ("web-22", ALLOW, "web-restarts"),
        ("web-9", DENY, "web-9-frozen"),
        ("db-1", DENY, "db-frozen"),
        ("db-2", DENY, "db-frozen"),
        ("db-3", CONFIRM, "operator:routine"),
        ("local", CONFIRM, "operator:routine"),
        ("myweb-1", CONFIRM, "operator:routine"),
    ):
        yield case(
            f"hosts/RestartUnit/{host}/operator",
            "operator+hosts",
            manager("RestartUnit", "app.service", "replace", host=host),
            verdict,
            rule,
        )
    for host, verdict, rule in (("lab-1", CONFIRM, "lab-dangerous"), ("web-1", DENY, "operator:dangerous")):
        yield case(
            f"hosts/risk-rule/PowerOff/{host}/operator", "operator+hosts", manager("PowerOff", host=host), verdict, rule
        )
    yield case(
        "hosts/protection-beats-host-rule/web-1/admin",
        "admin+hosts",
        manager("RestartUnit", "sshd.service", "replace", host="web-1"),
        DENY,
        "protected-units",
    )
    yield case(
        "hosts/secret-beats-risk-rule/lab-1/admin",
        "admin+hosts",
        call(SECRETS, SECRET_PATH, "org.freedesktop.Secret.Service", "GetSecrets", [], "/s", host="lab-1"),
        DENY,
        "admin:secret",
    )

    # Ties and specificity.
    for preset in PRESETS:
        policy = f"{preset}+ties"
        yield case(
            f"ties/allow-vs-deny/{preset}",
            policy,
            manager("RestartUnit", "web-1.service", "replace"),
            DENY,
            "deny-restart-by-destination",
        )
        yield case(
            f"ties/allow-vs-confirm/{preset}",
            policy,
            manager("ReloadUnit", "web-1.service", "replace"),
            CONFIRM,
            "confirm-reload-by-destination",
        )
        yield case(f"ties/exact-beats-glob/{preset}", policy, manager("GetUnit", "x.service"), ALLOW, "get-unit-ok")
        yield case(f"ties/glob-tightens/{preset}", policy, manager("GetUnitByPID", 1), DENY, "no-systemd-getters")
        yield case(f"ties/file-tightens-read/{preset}", policy, manager("ListJobs"), DENY, "no-list-jobs")
        yield case(f"ties/unaffected-read/{preset}", policy, manager("ListUnits"), ALLOW, f"{preset}:read")


CASES = list(_cases())


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Policy]:
    directory = tmp_path_factory.mktemp("policies")
    loaded: dict[str, Policy] = {}
    for preset in PRESETS:
        loaded[preset] = load_policy(preset, None, ["postgresql.service"])
        for name, text in POLICY_FILES.items():
            path = directory / f"{name}.toml"
            path.write_text(text)
            loaded[f"{preset}+{name}"] = load_policy(preset, Path(path))
    return loaded


def decide(policy: Policy, operation: Operation, hints: Hints | None = None) -> tuple[Decision, Risk]:
    classification = classify(operation, hints)
    return policy.decide(operation, classification), classification.risk


@pytest.mark.parametrize("case", CASES)
def test_policy_matrix(case: Case, policies: dict[str, Policy]) -> None:
    decision, risk = decide(policies[case.policy], case.operation, case.hints)
    if case.risk is not None:
        assert risk is case.risk, f"classified {risk.label}, expected {case.risk.label}"
    assert (decision.verdict, decision.rule) == (case.verdict, case.rule), decision.reason
    assert decision.reason


def test_matrix_is_large_enough() -> None:
    # The issue asks for at least 200 cases; the count is reported with the suite.
    assert len(CASES) >= 200
    assert len({param.id for param in CASES}) == len(CASES), "case ids must be unique"
