"""The catalog's data: which well-known D-Bus members read, change routinely, or are dangerous; which units are
protected; which targets shut a machine down; and which polkit action guards what.

A member the catalog does not know is UNKNOWN, never a read: the shape of a name proves nothing
(`GetSecrets` starts with "Get").
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetbus import well_known
from fleetbus.guard.catalog.secrets import SecretArg, SecretKind


class Risk(enum.IntEnum):
    """Ordered: a hint may raise a classification, never lower it."""

    READ = 0
    ROUTINE = 1
    UNKNOWN = 2
    DANGEROUS = 3
    SECRET = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class UnitAction(enum.Enum):
    """What an operation does to a unit; protected units refuse the disruptive ones."""

    START = "start"
    RELOAD = "reload"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"
    DISABLE = "disable"
    MASK = "mask"
    FREEZE = "freeze"
    CHANGE = "change"
    """Unit files or properties rewritten, links, presets: anything that alters how the unit runs."""
    RESET = "reset"

    @property
    def disruptive(self) -> bool:
        return self not in (UnitAction.START, UnitAction.RELOAD, UnitAction.RESET)


class Effect(enum.Enum):
    """Which consequences of a unit call the guard works out from the unit graph (guard/effects.py)."""

    NONE = "none"
    """Nothing beyond the named units changes now: reload, reset, thaw, enable or unmask by name."""
    START = "start"
    """The units the start pulls in, the ones they conflict with, and what those set off."""
    STOP = "stop"
    """The units the stop takes down with it, and what their ending sets off."""
    RESTART = "restart"
    """Both: every unit taken down is started again."""
    TAKE_DOWN = "take-down"
    """The units depending on the named ones, for their protection; nothing starts or stops now (disable, mask,
    freeze, clean, rewrite)."""
    BOOT = "boot"
    """What starting the unit at boot would start (SetDefaultTarget)."""


ACTION_EFFECTS = {
    UnitAction.START: Effect.START,
    UnitAction.RELOAD: Effect.NONE,
    UnitAction.STOP: Effect.STOP,
    UnitAction.RESTART: Effect.RESTART,
    UnitAction.KILL: Effect.STOP,
    UnitAction.DISABLE: Effect.TAKE_DOWN,
    UnitAction.MASK: Effect.TAKE_DOWN,
    UnitAction.FREEZE: Effect.TAKE_DOWN,
    UnitAction.CHANGE: Effect.TAKE_DOWN,
    UnitAction.RESET: Effect.NONE,
}
"""The effect of a unit action unless an entry says otherwise."""


@dataclass(frozen=True)
class Entry:
    """Knowledge about one member (or a glob of members) of one interface."""

    member: str
    risk: Risk
    reason: str
    unit_action: UnitAction | None = None
    unit_args: tuple[int, ...] = ()
    """Indexes of the arguments naming the unit(s) or unit files; none with a unit_action: the object path names
    the unit."""
    polkit_action: str | None = None
    mode_arg: int | None = None
    """Index of the job-mode argument ("replace", "isolate", …) of members that queue a job."""
    job_arg: int | None = None
    """Index of the job-type argument ("start", "stop", …) of members that queue any kind of job."""
    effect: Effect | None = None
    """What the guard works out from the unit graph; None: the unit action's usual effect (ACTION_EFFECTS)."""
    links_files: bool = False
    """A unit-file argument given as a path (anything with "/") links that foreign file into the unit
    directories: its commands would run as the manager's user."""
    runs_code: bool = False
    """Runs a command of the caller's choosing (a transient unit): it needs the `exec` scope."""
    connection: bool = False
    """Changes the state of fleetbus's own bus connection, which every client shares: always refused."""
    secrets: tuple[SecretArg, ...] = ()
    """Arguments that carry secrets, for the audit log to hide."""

    def effect_of(self, action: UnitAction | None) -> Effect:
        if self.effect is not None:
            return self.effect
        return ACTION_EFFECTS[action] if action is not None else Effect.NONE


def _entries(risk: Risk, reason: str, members: Iterable[str], **extra: Any) -> list[Entry]:
    return [Entry(member, risk, reason, **extra) for member in members]


R, C, D, S = Risk.READ, Risk.ROUTINE, Risk.DANGEROUS, Risk.SECRET
SD_UNITS = "org.freedesktop.systemd1.manage-units"
SD_FILES = "org.freedesktop.systemd1.manage-unit-files"


def _unit(
    member: str, risk: Risk, reason: str, action: UnitAction, polkit: str | None = SD_UNITS, **extra: Any
) -> Entry:
    """A member whose first argument names the unit(s) it acts on."""
    return Entry(member, risk, reason, unit_action=action, unit_args=(0,), polkit_action=polkit, **extra)


def _processes(*, mounts: bool) -> list[Entry]:
    """The members of a unit with processes: listing them, moving processes in, and (services) mounting into it."""
    entries = [
        Entry("GetProcesses", R, "lists the unit's processes"),
        # Moving a protected service's processes into this unit lets stopping this unit kill them.
        Entry(
            "AttachProcesses",
            D,
            "moves arbitrary processes into the unit",
            unit_action=UnitAction.CHANGE,
            polkit_action=SD_UNITS,
        ),
    ]
    if mounts:
        entries += _entries(
            D,
            "mounts into this unit's namespace",
            ["BindMount", "MountImage"],
            unit_action=UnitAction.CHANGE,
            polkit_action=SD_UNITS,
        )
    return entries


CATALOG: dict[str, list[Entry]] = {
    "org.freedesktop.DBus": [
        *_entries(
            R,
            "asks the bus daemon about names and connections",
            [
                "ListNames",
                "ListActivatableNames",
                "NameHasOwner",
                "GetNameOwner",
                "ListQueuedOwners",
                "GetConnectionUnixUser",
                "GetConnectionUnixProcessID",
                "GetConnectionCredentials",
                "GetAdtAuditSessionData",
                "GetConnectionSELinuxSecurityContext",
                "GetId",
            ],
        ),
        Entry("StartServiceByName", C, "starts a bus-activatable service"),
        Entry("ReloadConfig", C, "makes the bus daemon reload its configuration"),
        Entry("UpdateActivationEnvironment", D, "changes the environment of every service the bus activates"),
        # Every client's calls share fleetbus's one connection per bus: a client's match rules count against its
        # limit (and fill its queue), a name it owns speaks for fleetbus, a monitor stops it calling at all.
        *_entries(
            D,
            "adds or removes a match rule on the connection every client shares (fleetbus's signal subscriptions "
            "live there)",
            ["AddMatch", "RemoveMatch"],
            connection=True,
        ),
        *_entries(
            D, "makes fleetbus's connection own or give up a bus name", ["RequestName", "ReleaseName"], connection=True
        ),
        Entry("Hello", D, "registers a connection with the bus again", connection=True),
    ],
    "org.freedesktop.DBus.Monitoring": [
        Entry("*", D, "turns the connection every client shares into a monitor of all traffic", connection=True)
    ],
    "org.freedesktop.DBus.Debug.Stats": [Entry("*", R, "bus daemon statistics")],
    "org.freedesktop.DBus.Introspectable": [Entry("Introspect", R, "describes an object")],
    "org.freedesktop.DBus.Peer": [Entry("*", R, "ping or machine id")],
    "org.freedesktop.DBus.ObjectManager": [Entry("GetManagedObjects", R, "lists a service's objects")],
    "org.freedesktop.DBus.Properties": [
        Entry("Get", R, "reads a property"),
        Entry("GetAll", R, "reads an interface's properties"),
        # Set is classified by bus in `classify`: dangerous on the system bus, routine on a session bus.
    ],
    "org.freedesktop.systemd1.Manager": [
        Entry("Subscribe", R, "asks systemd to emit job and unit signals"),
        Entry("Unsubscribe", R, "stops systemd's job and unit signals for this client"),
        *_entries(R, "reads the service manager's state", ["Get*", "List*", "Lookup*", "Dump*"]),
        # LoadUnit reads a unit file into memory to answer; it starts, stops and changes nothing.
        Entry("LoadUnit", R, "loads a unit's definition to describe it"),
        _unit(
            "StartTransientUnit",
            D,
            "runs an arbitrary command as a new unit",
            UnitAction.START,
            runs_code=True,
            secrets=(SecretArg(2, SecretKind.UNIT_PROPERTIES), SecretArg(3, SecretKind.AUX_UNITS)),
        ),
        _unit(
            "SetUnitProperties",
            D,
            "rewrites unit properties",
            UnitAction.CHANGE,
            secrets=(SecretArg(2, SecretKind.UNIT_PROPERTIES),),
        ),
        *_entries(
            D,
            "powers off, reboots or replaces the running system",
            ["KExec", "PowerOff", "Reboot", "Halt", "SoftReboot", "SwitchRoot", "Exit"],
            polkit_action="org.freedesktop.systemd1.manage-units",
        ),
        Entry(
            "SetEnvironment",
            D,
            "changes the environment of every unit started from now on",
            polkit_action="org.freedesktop.systemd1.set-environment",
            secrets=(SecretArg(0, SecretKind.ASSIGNMENTS),),
        ),
        Entry(
            "UnsetEnvironment",
            D,
            "changes the environment of every unit started from now on",
            polkit_action="org.freedesktop.systemd1.set-environment",
        ),
        Entry(
            "UnsetAndSetEnvironment",
            D,
            "changes the environment of every unit started from now on",
            polkit_action="org.freedesktop.systemd1.set-environment",
            secrets=(SecretArg(1, SecretKind.ASSIGNMENTS),),
        ),
        *_entries(
            D,
            "mounts into a running unit's namespace",
            ["BindMountUnit", "MountImageUnit"],
            unit_args=(0,),
            unit_action=UnitAction.CHANGE,
            polkit_action=SD_UNITS,
        ),
        _unit("MaskUnitFiles", D, "masks units so they cannot start", UnitAction.MASK, polkit=SD_FILES),
        _unit(
            "LinkUnitFiles",
            D,
            "links unit files from arbitrary paths",
            UnitAction.CHANGE,
            polkit=SD_FILES,
            links_files=True,
        ),
        Entry("PresetAllUnitFiles", D, "re-applies presets to every unit", polkit_action=SD_FILES),
        _unit("StartUnit", C, "starts a unit", UnitAction.START, mode_arg=1),
        _unit("StartUnitWithFlags", C, "starts a unit", UnitAction.START, mode_arg=1),
        Entry(
            "StartUnitReplace",
            C,
            "replaces a unit's job",
            unit_args=(1,),
            unit_action=UnitAction.START,
            polkit_action=SD_UNITS,
            mode_arg=2,
        ),
        _unit("StopUnit", C, "stops a unit", UnitAction.STOP),
        _unit("RestartUnit", C, "restarts a unit", UnitAction.RESTART, mode_arg=1),
        _unit("TryRestartUnit", C, "restarts a unit if it runs", UnitAction.RESTART),
        _unit("ReloadOrRestartUnit", C, "reloads or restarts a unit", UnitAction.RESTART),
        _unit("ReloadOrTryRestartUnit", C, "reloads or restarts a unit", UnitAction.RESTART),
        _unit("ReloadUnit", C, "reloads a unit's configuration", UnitAction.RELOAD),
        _unit("KillUnit", C, "sends a signal to a unit's processes", UnitAction.KILL),
        _unit("QueueSignalUnit", C, "sends a signal to a unit's processes", UnitAction.KILL),
        _unit("FreezeUnit", C, "freezes a unit's processes", UnitAction.FREEZE),
        _unit("ThawUnit", C, "thaws a unit's processes", UnitAction.START, effect=Effect.NONE),
        _unit("CleanUnit", C, "removes a unit's state, cache or logs", UnitAction.CHANGE),
        _unit("ResetFailedUnit", C, "clears a unit's failed state", UnitAction.RESET),
        Entry("ResetFailed", C, "clears every unit's failed state", polkit_action=SD_UNITS),
        # Enabling by name starts nothing now; enabling a path links a foreign file (links_files).
        *(
            _unit(member, C, "enables units", UnitAction.START, polkit=SD_FILES, effect=Effect.NONE, links_files=True)
            for member in ("EnableUnitFiles", "EnableUnitFilesWithFlags")
        ),
        _unit("DisableUnitFiles", C, "disables units", UnitAction.DISABLE, polkit=SD_FILES),
        _unit("DisableUnitFilesWithFlags", C, "disables units", UnitAction.DISABLE, polkit=SD_FILES),
        _unit("DisableUnitFilesWithFlagsAndInstallInfo", C, "disables units", UnitAction.DISABLE, polkit=SD_FILES),
        _unit("ReenableUnitFiles", C, "re-enables units", UnitAction.CHANGE, polkit=SD_FILES, links_files=True),
        _unit("RevertUnitFiles", C, "drops local changes to units", UnitAction.CHANGE, polkit=SD_FILES),
        *(
            _unit(member, C, "applies presets to units", UnitAction.CHANGE, polkit=SD_FILES, links_files=True)
            for member in ("PresetUnitFiles", "PresetUnitFilesWithMode")
        ),
        _unit("UnmaskUnitFiles", C, "unmasks units", UnitAction.START, polkit=SD_FILES, effect=Effect.NONE),
        # AddDependencyUnitFiles(files, target, type, …) rewrites the target too: it gains a dependency on files.
        Entry(
            "AddDependencyUnitFiles",
            C,
            "adds unit dependencies",
            unit_action=UnitAction.CHANGE,
            unit_args=(0, 1),
            polkit_action=SD_FILES,
            links_files=True,
        ),
        # The new default is started at every boot: what that would start is judged (Effect.BOOT).
        _unit(
            "SetDefaultTarget",
            C,
            "changes the default boot target",
            UnitAction.CHANGE,
            polkit=SD_FILES,
            effect=Effect.BOOT,
        ),
        Entry(
            "Reload",
            C,
            "reloads every unit file (daemon-reload)",
            polkit_action="org.freedesktop.systemd1.reload-daemon",
        ),
        Entry(
            "Reexecute", C, "re-executes the service manager", polkit_action="org.freedesktop.systemd1.reload-daemon"
        ),
        Entry("SetShowStatus", C, "turns the manager's boot-status messages on or off", polkit_action=SD_UNITS),
        Entry("SetExitCode", C, "sets the code a user manager exits with when it ends"),
        *_entries(C, "changes jobs or unit references", ["CancelJob", "ClearJobs", "RefUnit", "UnrefUnit"]),
        _unit("AbandonScope", C, "abandons a scope unit", UnitAction.CHANGE, polkit=None),
        # EnqueueUnitJob(name, job_type, job_mode) can be any job, so what it does to the unit depends on job_type.
        Entry(
            "EnqueueUnitJob",
            C,
            "queues a job for a unit",
            unit_args=(0,),
            job_arg=1,
            mode_arg=2,
            polkit_action=SD_UNITS,
        ),
        # Moving a protected service's processes into another unit lets stopping that unit kill them.
        _unit("AttachProcessesToUnit", D, "moves arbitrary processes into a unit", UnitAction.CHANGE),
        # The units it restarts or stops are the ones marked earlier; they are not named in the call.
        Entry(
            "EnqueueMarkedJobs",
            D,
            "restarts or stops every unit marked for it, whichever they are",
            polkit_action=SD_UNITS,
        ),
    ],
    "org.freedesktop.systemd1.Unit": [
        *_entries(R, "reads unit state", ["Get*", "List*"]),
        Entry("Start", C, "starts this unit", unit_action=UnitAction.START, polkit_action=SD_UNITS, mode_arg=0),
        Entry("EnqueueJob", C, "queues a job for this unit", job_arg=0, mode_arg=1, polkit_action=SD_UNITS),
        Entry("Stop", C, "stops this unit", unit_action=UnitAction.STOP, polkit_action=SD_UNITS),
        Entry("Reload", C, "reloads this unit", unit_action=UnitAction.RELOAD, polkit_action=SD_UNITS),
        *_entries(
            C,
            "restarts this unit",
            ["Restart", "TryRestart", "ReloadOrRestart", "ReloadOrTryRestart"],
            unit_action=UnitAction.RESTART,
            polkit_action=SD_UNITS,
        ),
        *_entries(
            C,
            "signals this unit's processes",
            ["Kill", "QueueSignal"],
            unit_action=UnitAction.KILL,
            polkit_action=SD_UNITS,
        ),
        Entry("Freeze", C, "freezes this unit", unit_action=UnitAction.FREEZE, polkit_action=SD_UNITS),
        Entry("Thaw", C, "thaws this unit", unit_action=UnitAction.START, polkit_action=SD_UNITS, effect=Effect.NONE),
        Entry(
            "ResetFailed", C, "clears this unit's failed state", unit_action=UnitAction.RESET, polkit_action=SD_UNITS
        ),
        Entry("Clean", C, "removes this unit's state", unit_action=UnitAction.CHANGE, polkit_action=SD_UNITS),
        *_entries(C, "changes this unit's references", ["Ref", "Unref"]),
        Entry(
            "SetProperties",
            D,
            "rewrites this unit's properties",
            unit_action=UnitAction.CHANGE,
            polkit_action=SD_UNITS,
            secrets=(SecretArg(1, SecretKind.UNIT_PROPERTIES),),
        ),
    ],
    # The unit types with processes share these members: twins of the Manager's *Unit members, on the unit's object.
    **{
        f"org.freedesktop.systemd1.{unit_type}": _processes(mounts=unit_type == "Service")
        for unit_type in ("Service", "Socket", "Slice", "Mount", "Swap")
    },
    "org.freedesktop.systemd1.Scope": [
        *_processes(mounts=False),
        Entry("Abandon", C, "abandons the scope", unit_action=UnitAction.CHANGE),
    ],
    "org.freedesktop.systemd1.Job": [
        *_entries(R, "reads job relations", ["GetAfter", "GetBefore"]),
        Entry("Cancel", C, "cancels a queued job"),
    ],
    "org.freedesktop.login1.Manager": [
        *_entries(R, "reads sessions, users, seats and capabilities", ["Get*", "List*", "Can*"]),
        *_entries(
            D,
            "powers off, reboots or suspends the machine",
            [
                "PowerOff",
                "PowerOffWithFlags",
                "Reboot",
                "RebootWithFlags",
                "Halt",
                "HaltWithFlags",
                "Suspend",
                "SuspendWithFlags",
                "Hibernate",
                "HibernateWithFlags",
                "HybridSleep",
                "HybridSleepWithFlags",
                "SuspendThenHibernate",
                "SuspendThenHibernateWithFlags",
                "ScheduleShutdown",
                "SetRebootParameter",
                "SetRebootToFirmwareSetup",
                "SetRebootToBootLoaderMenu",
                "SetRebootToBootLoaderEntry",
            ],
            polkit_action="org.freedesktop.login1.power-off",
        ),
        *_entries(
            D,
            "ends sessions or users and kills their processes",
            ["KillSession", "KillUser", "TerminateSession", "TerminateUser", "TerminateSeat"],
        ),
        *_entries(
            D,
            "changes devices, sessions or broadcast messages",
            [
                "AttachDevice",
                "FlushDevices",
                "CreateSession",
                "CreateSessionWithPIDFD",
                "ReleaseSession",
                "SetWallMessage",
                "Inhibit",
            ],
        ),
        *_entries(
            C,
            "locks, unlocks or switches sessions",
            [
                "LockSession",
                "UnlockSession",
                "LockSessions",
                "UnlockSessions",
                "ActivateSession",
                "ActivateSessionOnSeat",
            ],
        ),
        Entry(
            "SetUserLinger",
            C,
            "lets a user's services run without a login",
            polkit_action="org.freedesktop.login1.set-user-linger",
        ),
        Entry("CancelScheduledShutdown", C, "cancels a scheduled shutdown"),
    ],
    "org.freedesktop.login1.Session": [
        *_entries(D, "ends the session or kills its processes", ["Terminate", "Kill"]),
        # Taking control of a session hands its devices (keyboard, display) to the caller.
        *_entries(
            D,
            "takes or gives up control of the session's devices",
            ["TakeControl", "ReleaseControl", "TakeDevice", "ReleaseDevice", "PauseDeviceComplete"],
        ),
        *_entries(
            C, "locks, unlocks or activates the session", ["Lock", "Unlock", "Activate", "SetIdleHint", "SetLockedHint"]
        ),
        *_entries(
            C,
            "changes the session's type, display, terminal or brightness",
            ["SetType", "SetDisplay", "SetTTY", "SetClass", "SetBrightness"],
        ),
    ],
    "org.freedesktop.login1.User": [Entry("*", D, "ends the user's sessions or kills their processes")],
    "org.freedesktop.login1.Seat": [
        Entry("Terminate", D, "ends every session on the seat"),
        Entry("*", C, "switches sessions on the seat"),
    ],
    "org.freedesktop.hostname1": [
        *_entries(R, "describes the host", ["Describe", "GetProductUUID", "GetHardwareSerial"]),
        *_entries(
            C,
            "changes the host's name or machine information",
            [
                "SetHostname",
                "SetStaticHostname",
                "SetPrettyHostname",
                "SetIconName",
                "SetChassis",
                "SetDeployment",
                "SetLocation",
            ],
            polkit_action="org.freedesktop.hostname1.set-hostname",
        ),
    ],
    "org.freedesktop.timedate1": [
        Entry("ListTimezones", R, "lists time zones"),
        Entry("SetTimezone", C, "changes the time zone", polkit_action="org.freedesktop.timedate1.set-timezone"),
        Entry("SetNTP", C, "turns network time sync on or off", polkit_action="org.freedesktop.timedate1.set-ntp"),
        Entry("SetTime", D, "sets the system clock", polkit_action="org.freedesktop.timedate1.set-time"),
        Entry(
            "SetLocalRTC",
            D,
            "changes how the hardware clock is kept",
            polkit_action="org.freedesktop.timedate1.set-local-rtc",
        ),
    ],
    "org.freedesktop.locale1": [
        *_entries(
            C,
            "changes the system locale or keyboard",
            ["SetLocale", "SetVConsoleKeyboard", "SetX11Keyboard"],
            polkit_action="org.freedesktop.locale1.set-locale",
        )
    ],
    "org.freedesktop.PolicyKit1.Authority": [
        *_entries(
            R, "asks what is authorized", ["CheckAuthorization", "EnumerateActions", "EnumerateTemporaryAuthorizations"]
        ),
        Entry("*", D, "changes authentication agents or authorizations"),
    ],
    "org.freedesktop.Secret.Service": [
        *_entries(S, "reveals stored secrets", ["GetSecrets", "OpenSession", "Unlock", "CreateCollection", "SetAlias"]),
        *_entries(R, "searches secret metadata", ["SearchItems", "ReadAlias"]),
        Entry("Lock", C, "locks secret collections"),
    ],
    "org.freedesktop.Secret.Item": [
        Entry("GetSecret", S, "reveals a stored secret"),
        Entry("SetSecret", S, "replaces a stored secret"),
        Entry("Delete", D, "deletes a stored secret"),
    ],
    "org.freedesktop.Secret.Collection": [
        Entry("SearchItems", R, "searches secret metadata"),
        Entry("CreateItem", S, "stores a secret"),
        Entry("Delete", D, "deletes a secret collection"),
    ],
    "org.freedesktop.PackageKit": [
        *_entries(
            R,
            "reads PackageKit's state",
            ["GetDaemonState", "GetTimeSinceAction", "GetTransactionList", "CanAuthorize", "GetPackageHistory"],
        ),
        Entry("CreateTransaction", C, "opens a PackageKit transaction"),
        Entry("StateHasChanged", C, "tells PackageKit the system changed"),
        Entry("SetProxy", D, "changes the package download proxy"),
        Entry("SuggestDaemonQuit", C, "asks PackageKit to exit"),
    ],
    "org.freedesktop.PackageKit.Offline": [
        Entry("GetPrepared", R, "lists the packages prepared for an offline update"),
        # The prepared update is installed at the next boot, and Trigger's action reboots (or powers off) for it.
        *_entries(D, "reboots the machine into an offline update or upgrade", ["Trigger", "TriggerUpgrade"]),
        *_entries(C, "cancels or clears a prepared offline update", ["Cancel", "ClearResults"]),
    ],
    "org.freedesktop.PackageKit.Transaction": [
        *_entries(
            R,
            "queries packages",
            [
                "GetDetails",
                "GetDetailsLocal",
                "GetPackages",
                "GetUpdates",
                "GetUpdateDetail",
                "Resolve",
                "SearchNames",
                "SearchDetails",
                "SearchFiles",
                "SearchGroups",
                "GetRepoList",
                "GetFiles",
                "GetFilesLocal",
                "DependsOn",
                "RequiredBy",
                "WhatProvides",
                "GetCategories",
                "GetDistroUpgrades",
                "GetOldTransactions",
            ],
        ),
        *_entries(
            C,
            "refreshes metadata or steers a transaction",
            ["RefreshCache", "Cancel", "SetHints", "DownloadPackages"],
            polkit_action="org.freedesktop.packagekit.system-sources-refresh",
        ),
        *_entries(
            D,
            "installs, removes or upgrades software",
            [
                "InstallPackages",
                "InstallFiles",
                "InstallSignature",
                "RemovePackages",
                "UpdatePackages",
                "UpgradeSystem",
                "RepairSystem",
                "AcceptEula",
            ],
            polkit_action="org.freedesktop.packagekit.package-install",
        ),
        *_entries(
            D,
            "changes package sources",
            ["RepoEnable", "RepoSetData", "RepoRemove"],
            polkit_action="org.freedesktop.packagekit.system-sources-configure",
        ),
    ],
    "org.freedesktop.NetworkManager": [
        *_entries(R, "reads network devices and connections", ["Get*", "CheckConnectivity", "state"]),
        # Cutting a host's network cuts fleetbus (and SSH) off it.
        *_entries(
            D,
            "changes or cuts the host's network",
            [
                "ActivateConnection",
                "AddAndActivateConnection",
                "AddAndActivateConnection2",
                "DeactivateConnection",
                "Enable",
                "Sleep",
                "Reload",
                "SetLogging",
                "Checkpoint*",
            ],
            secrets=(SecretArg(0, SecretKind.CONNECTION_SETTINGS),),
        ),
    ],
    "org.freedesktop.NetworkManager.Settings": [
        *_entries(R, "lists saved connections", ["ListConnections", "GetConnectionByUuid"]),
        *_entries(
            D,
            "adds or reloads network connections",
            ["AddConnection", "AddConnectionUnsaved", "AddConnection2", "LoadConnections", "ReloadConnections"],
            secrets=(SecretArg(0, SecretKind.CONNECTION_SETTINGS),),
        ),
        Entry("SaveHostname", C, "saves the host name"),
    ],
    "org.freedesktop.NetworkManager.Settings.Connection": [
        Entry("GetSettings", R, "reads a connection's settings (without secrets)"),
        Entry("GetSecrets", S, "reveals a connection's secrets"),
        *_entries(
            D,
            "rewrites, deletes or clears a network connection",
            ["Update", "UpdateUnsaved", "Update2", "Delete", "Save", "ClearSecrets"],
            secrets=(SecretArg(0, SecretKind.CONNECTION_SETTINGS),),
        ),
    ],
    "org.freedesktop.NetworkManager.Device": [
        *_entries(R, "reads a network device", ["GetAppliedConnection"]),
        *_entries(
            D,
            "reconfigures or disconnects a network device",
            ["Reapply", "Disconnect", "Delete"],
            secrets=(SecretArg(0, SecretKind.CONNECTION_SETTINGS),),
        ),
    ],
    "org.freedesktop.machine1.Manager": [
        *_entries(R, "reads machines and images", ["Get*", "List*"]),
        *_entries(D, "runs commands in, changes or ends machines", ["*"]),
    ],
    "org.freedesktop.resolve1.Manager": [
        *_entries(R, "resolves names", ["Resolve*", "GetLink"]),
        *_entries(C, "flushes or resets resolver state", ["FlushCaches", "ResetServerFeatures", "ResetStatistics"]),
        *_entries(D, "changes name resolution", ["SetLink*", "RevertLink", "RegisterService", "UnregisterService"]),
    ],
    "org.freedesktop.network1.Manager": [
        *_entries(R, "reads network links", ["Get*", "List*", "Describe*"]),
        *_entries(C, "re-applies network configuration", ["Reload", "ReconfigureLink", "RenewLink", "ForceRenewLink"]),
        *_entries(D, "changes network configuration", ["SetLink*", "RevertLink*"]),
    ],
}

DANGEROUS_TARGETS = (
    "poweroff.target",
    "reboot.target",
    "halt.target",
    "kexec.target",
    "soft-reboot.target",
    "shutdown.target",
    "rescue.target",
    "emergency.target",
    "ctrl-alt-del.target",
    "exit.target",
    "final.target",
    "sleep.target",
    "suspend.target",
    "hibernate.target",
    "hybrid-sleep.target",
    "suspend-then-hibernate.target",
    "systemd-poweroff.service",
    "systemd-reboot.service",
    "systemd-halt.service",
    "systemd-kexec.service",
    "systemd-suspend.service",
    "systemd-hibernate.service",
    "systemd-hybrid-sleep.service",
    "systemd-suspend-then-hibernate.service",
    "systemd-soft-reboot.service",
    "systemd-exit.service",
    "runlevel0.target",
    "runlevel1.target",
    "runlevel6.target",
    "umount.target",
    "system-update.target",
)
"""Starting one of these powers off, reboots, suspends, ends the manager or drops the machine to a rescue shell.
Judged by name where systemd cannot be asked (a unit file not loaded); on a live manager the guard also follows
what a start pulls in (guard/effects.py), so an alias or a unit that requires one of these counts too."""

DEFAULT_PROTECTED_UNITS = (
    "dbus.service",
    "dbus.socket",
    "dbus-broker.service",
    "messagebus.service",
    "ssh.service",
    "ssh.socket",
    "ssh@*.service",
    "sshd.service",
    "sshd.socket",
    "sshd@*.service",
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
    "systemd-logind.service",
    # systemd installs this alias for logind everywhere; StopUnit on it stops logind.
    "dbus-org.freedesktop.login1.service",
    "polkit.service",
    "fleetbus.service",
    "fleetbus.socket",
    "fleetbus@*.service",
    # What keeps the host reachable: its network, and the slices and scope everything runs in.
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "dbus-org.freedesktop.network1.service",
    "NetworkManager.service",
    "dbus-org.freedesktop.NetworkManager.service",
    "networking.service",
    "init.scope",
    "-.slice",
    "system.slice",
    "user.slice",
    "-.mount",
)
"""Stopping, restarting, disabling, masking, freezing or killing these can cut off the machine or fleetbus."""


@dataclass(frozen=True)
class PropertyEntry:
    """Knowledge about writing one property (or a glob of them) of one interface."""

    name: str
    risk: Risk
    reason: str


PROPERTIES: dict[str, list[PropertyEntry]] = {
    "org.freedesktop.systemd1.Manager": [
        # A watchdog the hardware is not fed for reboots the machine; LogTarget=null silences the manager.
        PropertyEntry("*Watchdog*", D, "changes the hardware or service watchdogs, which reboot the machine"),
        PropertyEntry("Log*", D, "changes or silences the service manager's logging"),
    ],
    "org.freedesktop.LogControl1": [PropertyEntry("*", D, "changes or silences a service's logging")],
    "org.freedesktop.login1.Manager": [
        PropertyEntry("*WallMessage*", C, "changes the message users see before a shutdown")
    ],
}
"""Writable properties of the catalog's services. Properties.Set of one not listed here is dangerous on the system
bus and routine on a session bus."""


def lookup_property(interface: str, name: str) -> PropertyEntry | None:
    return next((e for e in PROPERTIES.get(interface, ()) if fnmatch.fnmatchcase(name, e.name)), None)


CALLER_UNIT = "self"
"""The unit of whoever makes the call: systemd reads an empty unit name, and the object path
`/org/freedesktop/systemd1/unit/self`, as the caller's own unit — fleetbus's, or the SSH session it runs in.
It is always protected."""

UNIT_PATH_PREFIX = well_known.UNIT_PATH_PREFIX

HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

JOB_ACTIONS = {
    "start": UnitAction.START,
    "verify-active": UnitAction.START,
    "nop": UnitAction.START,
    "reload": UnitAction.RELOAD,
    "try-reload": UnitAction.RELOAD,
    "reload-or-start": UnitAction.RELOAD,
    "stop": UnitAction.STOP,
    "restart": UnitAction.RESTART,
    "try-restart": UnitAction.RESTART,
}
"""systemd job types and what they do to a unit; a type not listed counts as a disruptive change."""


def lookup(interface: str, member: str) -> Entry | None:
    entries = CATALOG.get(interface, ())
    exact = next((e for e in entries if e.member == member), None)
    if exact is not None:
        return exact
    return next((e for e in entries if fnmatch.fnmatchcase(member, e.member)), None)


def unit_name_from_path(path: str) -> str:
    """systemd escapes unit names into object paths (`_2e` for "."); undo it."""
    encoded = path.rsplit("/", 1)[-1]
    out, index = [], 0
    while index < len(encoded):
        pair = encoded[index + 1 : index + 3]
        # Only two real hex digits are an escape; int() alone would also take "_1" or "+1".
        if encoded[index] == "_" and len(pair) == 2 and all(c in HEX_DIGITS for c in pair):
            out.append(chr(int(pair, 16)))
            index += 3
            continue
        out.append(encoded[index])
        index += 1
    return "".join(out)
