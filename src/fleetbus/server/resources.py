"""Resources: the effective policy, each bus's services (updated as names come and go), and the introspection
of any object as `dbus://{bus}/{service}{path}` — on another host of the inventory `dbus://{bus}@{host}/…`.
Reads go through the same tools (and so the gateway, which checks the host)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from fleetbus.gateway import Caller
from fleetbus.hosts.registry import UnknownHost
from fleetbus.operation import LOCAL_HOST
from fleetbus.runtime import Runtime
from fleetbus.tools.schema import BUS_NAME_PATTERN, OBJECT_PATH_PATTERN

POLICY_URI = "policy://effective"
TEMPLATE = "dbus://{bus}/{service}{+path}"
HOST_TEMPLATE = "dbus://{bus}@{host}/{service}{+path}"
RESOURCE_NOT_FOUND = -32002
JSON = "application/json"
MAX_URI_CHARS = 1024
"""Longest URI a client may subscribe to: a bus name (≤ 255) and a deep object path fit; 100 kB strings do not."""


def _authority(bus: str, host: str) -> str:
    return bus if host == LOCAL_HOST else f"{bus}@{host}"


def services_uri(bus: str, host: str = LOCAL_HOST) -> str:
    return f"dbus://{_authority(bus, host)}/services"


def object_uri(bus: str, service: str, path: str, host: str = LOCAL_HOST) -> str:
    return f"dbus://{_authority(bus, host)}/{service}{path}"


def listing(runtime: Runtime) -> list[types.Resource]:
    resources = [
        types.Resource(
            uri=POLICY_URI,
            name="effective-policy",
            title="Effective policy",
            mime_type=JSON,
            description="The safety preset, protected units, operator knowledge and every rule in precedence order.",
        )
    ]
    for bus in sorted(runtime.gateway.hosts.get(LOCAL_HOST).buses):
        resources.append(
            types.Resource(
                uri=services_uri(bus),
                name=f"{bus}-services",
                title=f"Services on the {bus} bus",
                mime_type=JSON,
                description="Well-known names, running and activatable; subscribe to hear when they change.",
            )
        )
    objects = sorted({(m.bus, m.service, m.path) for m in runtime.packs.known_methods()})
    for bus, service, path in objects:
        resources.append(
            types.Resource(
                uri=object_uri(bus, service, path),
                name=f"{service}{path}",
                title=f"{service} {path}",
                mime_type=JSON,
                description="Introspection of this object: methods, properties, signals.",
            )
        )
    return resources


def templates() -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            uri_template=TEMPLATE,
            name="dbus-object",
            title="A D-Bus object",
            mime_type=JSON,
            description="Introspection of any object, e.g. dbus://system/org.freedesktop.hostname1/org/freedesktop/"
            "hostname1; bus is system or session.",
        ),
        types.ResourceTemplate(
            uri_template=HOST_TEMPLATE,
            name="dbus-object-on-host",
            title="A D-Bus object on a host of the inventory",
            mime_type=JSON,
            description="As dbus://{bus}/…, on another host (list_hosts), e.g. dbus://system@web01/services.",
        ),
    ]


def check_subscribable(runtime: Runtime, uri: str, caller: Caller | None = None) -> None:
    """A subscription is kept for the session's life, so only a URI this server serves may be one: the policy,
    a bus's services, or an object of the dbus:// template (checked by syntax; its bus must be one we have).
    For a caller whose token names its hosts, a host outside them is answered as an unknown one: accepting it
    would tell such a token which hosts exist, and send it the host's update notices."""
    if len(uri) > MAX_URI_CHARS:
        raise MCPError(
            INVALID_PARAMS, f"uri: {len(uri)} characters, more than the {MAX_URI_CHARS} a subscribable URI may have"
        )
    if uri == POLICY_URI:
        return
    parts = urlsplit(uri)
    service, _, rest = parts.path.lstrip("/").partition("/")
    path = "/" + rest
    bus, at, host = parts.netloc.partition("@")
    served = (
        parts.scheme == "dbus"
        and bus in runtime.gateway.hosts.addresses
        and (not at or (_in_inventory(runtime, host) and _reachable_by(runtime, caller, host)))
        and not parts.query
        and not parts.fragment
        and (
            (service == "services" and not rest)
            or (
                re.fullmatch(BUS_NAME_PATTERN, service) is not None
                and re.fullmatch(OBJECT_PATH_PATTERN, path.rstrip("/") or "/") is not None
            )
        )
    )
    if not served:
        raise MCPError(
            INVALID_PARAMS,
            f"uri: {uri[:80]!r} is not a resource this server serves; subscribe to {POLICY_URI}, "
            f"{services_uri('system')} or an object as {TEMPLATE} (see resources/list)",
        )


def _reachable_by(runtime: Runtime, caller: Caller | None, host: str) -> bool:
    return caller is None or caller.hosts is None or runtime.gateway.hosts.matches(caller.hosts, host)


def _in_inventory(runtime: Runtime, host: str) -> bool:
    try:
        runtime.gateway.hosts.check_name(host)
    except UnknownHost:
        return False
    return True


async def read(runtime: Runtime, caller: Caller, uri: str) -> types.ReadResourceResult:
    if uri == POLICY_URI:
        return _json(uri, runtime.policy.describe())
    parts = urlsplit(uri)
    # Split by hand: urlsplit's `hostname` lowercases, and inventory names are case-sensitive.
    bus, at, host = parts.netloc.partition("@")
    if parts.scheme != "dbus" or bus not in ("system", "session") or (at and not host):
        raise MCPError(RESOURCE_NOT_FOUND, f"unknown resource {uri!r}; see resources/list, {TEMPLATE}, {HOST_TEMPLATE}")
    on_host = {"host": host} if at else {}
    service, _, rest = parts.path.lstrip("/").partition("/")
    if service == "services" and not rest:
        result = await runtime.registry.run(runtime.context(caller), "list_services", {"bus": bus, **on_host})
    else:
        path = "/" + rest
        if not re.fullmatch(BUS_NAME_PATTERN, service) or not re.fullmatch(
            OBJECT_PATH_PATTERN, path.rstrip("/") or "/"
        ):
            raise MCPError(
                INVALID_PARAMS,
                f"{uri}: expected dbus://{{bus}}/{{service}}{{path}} with a valid bus name and object path",
            )
        arguments = {"service": service, "path": path.rstrip("/") or "/", "bus": bus, **on_host}
        result = await runtime.registry.run(runtime.context(caller), "introspect", arguments)
    if result.is_error:
        raise MCPError(RESOURCE_NOT_FOUND, f"{uri}: {result.text}")
    return _json(uri, result.structured)


def _json(uri: str, value: Any) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=JSON, text=json.dumps(value, indent=1))]
    )
