"""What can go wrong reaching a host, in words a model (and an operator) can act on; every error names the host."""

from __future__ import annotations


class HostError(Exception):
    """Base class; `str(error)` is a complete sentence that starts with the host's name."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host


class HostUnreachable(HostError):
    """No SSH connection: refused, timed out, lost, or the proxy that reaches the host failed."""


class AuthenticationFailed(HostError):
    """The host's key was trusted, but it accepted none of our credentials."""


class HostKeyError(HostError):
    """The host's key is not one we trust; no credential was offered and no session opened."""

    code = "hostkey-refused"

    def __init__(self, host: str, message: str, *, key_type: str, fingerprint: str) -> None:
        super().__init__(host, message)
        self.key_type = key_type
        self.fingerprint = fingerprint
        """The offered key's SHA256 fingerprint, as `ssh-keygen -l` prints it (SHA256:…)."""


class UnknownHostKey(HostKeyError):
    """No known_hosts file lists any key for the host."""

    code = "unknown-hostkey"


class ChangedHostKey(HostKeyError):
    """known_hosts lists keys for the host, and the one it offered is not among them: possibly an attack."""

    code = "changed-hostkey"


class RevokedHostKey(HostKeyError):
    """known_hosts marks the offered key @revoked."""

    code = "revoked-hostkey"


class RemoteTimeout(HostError):
    """A remote call (a command, a channel, a bus link) did not finish within its deadline."""


class RemoteCommandError(HostError):
    """A command could not be started on the host (the channel was refused or the connection went away)."""
