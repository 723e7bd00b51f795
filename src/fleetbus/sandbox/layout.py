"""Where a sandbox keeps its things: its directory on disk and its cgroup subtree.

Both sides use this: the keeper inside the namespaces and the controller outside, so paths agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class SandboxPaths:
    """The sandbox directory. `run` is bind-mounted on /run inside, so sockets are reachable from outside."""

    root: Path
    cgroup: str = ""
    """The cgroup subtree (relative to each hierarchy); by default a slice named after the directory."""

    @property
    def sandbox_id(self) -> str:
        return self.root.name.rsplit("-", 1)[-1]

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def unit_dir(self) -> Path:
        """Operator units (like /etc/systemd/system on a host): `--units` and tests install here."""
        return self.home / ".config" / "systemd" / "user"

    @property
    def state_dir(self) -> Path:
        """fleetbus's own state (approvals, audit log) for servers pointed at this sandbox."""
        return self.root / "state"

    @property
    def bus_dir(self) -> Path:
        return self.root / "bus"

    @property
    def system_bus_config(self) -> Path:
        return self.bus_dir / "system.conf"

    @property
    def activation_dir(self) -> Path:
        return self.bus_dir / "system-services"

    def overlay(self, name: str) -> tuple[Path, Path]:
        """(upper, work) directories for the overlay over /`name`."""
        base = self.root / "overlay" / name
        return base / "upper", base / "work"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def keeper_log(self) -> Path:
        return self.root / "keeper.log"

    @property
    def system_bus_socket(self) -> Path:
        return self.run / "dbus" / "system_bus_socket"

    @property
    def session_bus_socket(self) -> Path:
        return self.run / "user" / "0" / "bus"

    @property
    def journal_dir(self) -> Path:
        return self.run / "log" / "journal"

    @property
    def cgroup_name(self) -> str:
        if self.cgroup:
            return self.cgroup
        # A slice name makes journald and sd-bus credentials attribute processes to their units
        # (_SYSTEMD_UNIT=foo.service), as on a host where the manager is PID 1.
        return f"fleetbus-sandbox-{self.sandbox_id}.slice"

    def read_state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)


@dataclass(frozen=True)
class CgroupLayout:
    """The cgroup hierarchies a service manager tracks processes in on this machine."""

    hierarchies: tuple[Path, ...]
    killable: Path | None
    """The cgroup2 hierarchy, whose `cgroup.kill` ends a whole subtree at once."""

    @classmethod
    def detect(cls, root: Path = CGROUP_ROOT) -> CgroupLayout:
        if (root / "cgroup.controllers").exists():
            return cls((root,), root)
        hierarchies: list[Path] = []
        unified = root / "unified"
        if (unified / "cgroup.controllers").exists():
            hierarchies.append(unified)
        if (root / "systemd" / "cgroup.procs").exists():
            hierarchies.append(root / "systemd")
        if not hierarchies:
            raise RuntimeError(f"no cgroup hierarchy for a service manager under {root}")
        return cls(tuple(hierarchies), unified if unified in hierarchies else None)

    def create(self, relative: str) -> None:
        for hierarchy in self.hierarchies:
            (hierarchy / relative).mkdir(parents=True, exist_ok=True)

    def enable_controllers(self, relative: str) -> None:
        """On a pure cgroup2 machine, pass controllers down so units get memory/CPU/tasks accounting."""
        if self.hierarchies != (self.killable,) or self.killable is None:
            return
        group = self.killable / relative
        wanted = (group / "cgroup.controllers").read_text().split()
        for controller in wanted:
            with contextlib.suppress(OSError):
                (group / "cgroup.subtree_control").write_text(f"+{controller}")

    def move(self, pid: int, relative: str) -> None:
        for hierarchy in self.hierarchies:
            (hierarchy / relative / "cgroup.procs").write_text(str(pid))

    def pids(self, relative: str) -> set[int]:
        found: set[int] = set()
        for hierarchy in self.hierarchies:
            base = hierarchy / relative
            if not base.exists():
                continue
            for procs in base.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return found

    def kill(self, relative: str, *, timeout: float = 5.0) -> None:
        """SIGKILL every process in the subtree and wait until it is empty."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids(relative)
            if not pids:
                return
            if self.killable is not None and (self.killable / relative).exists():
                with contextlib.suppress(OSError):
                    (self.killable / relative / "cgroup.kill").write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {sorted(pids)} survived SIGKILL in cgroup {relative}")
            time.sleep(0.05)

    def remove(self, relative: str) -> None:
        """rmdir the subtree leaf-first in every hierarchy; it must already be empty."""
        for hierarchy in self.hierarchies:
            base = hierarchy / relative
            if not base.exists():
                continue
            dirs = sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
            for directory in [*dirs, base]:
                # A cgroup that just lost its last process can refuse rmdir for a moment.
                for _ in range(50):
                    try:
                        directory.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
                else:
                    raise RuntimeError(f"cannot remove cgroup {directory}")
