"""How Ansible reads a host identifier: an optional `:port` (bracketed for IPv6), then an IPv4 or IPv6 address
or a hostname, any of which may hold `[x:y]` ranges. Inventories and host patterns both depend on it."""

from __future__ import annotations

import re

# A range where a hostname label may have one: a single letter pair or a numeric pair, with an optional step.
_LABEL_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
# A label starts with a word character or a range, may hold dashes, and does not end with a dash or underscore.
_LABEL = rf"(?:\w|{_LABEL_RANGE})(?:[\w-]|{_LABEL_RANGE})*(?<![-_])"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.IGNORECASE)
# A group of an IPv6 address: up to four hex digits, or a range standing for one.
_HEX_GROUP = r"(?:[0-9a-f]{1,4}|\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\])"
# Ansible's test for IPv6 only anchors most of its forms at the start, so any text that *begins* like an
# IPv6 address passes: `fe80::*` is one pattern term, not `fe80` and `*` (which would select every host).
# Reproduced as such, because how a pattern splits depends on it.
_IPV6_BEGINNING = re.compile(
    rf"::|(?:{_HEX_GROUP}:){{1,6}}:|(?:{_HEX_GROUP}:){{7}}{_HEX_GROUP}|(?:0:){{6}}(?:{_HEX_GROUP}\.){{3}}{_HEX_GROUP}",
    re.IGNORECASE,
)
_IPV4_MAPPED_IPV6 = re.compile(rf"(?:0:){{5}}ffff:(?:{_HEX_GROUP}\.){{3}}{_HEX_GROUP}", re.IGNORECASE)

# `[anything]:port`, the only way to give an IPv6 address a port.
_BRACKETED_WITH_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
# `host:port` where the host has no colon outside complete bracketed ranges.
_WITH_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)")


def split_port(text: str) -> tuple[str, int | None]:
    """`host:22` → ("host", 22); `[2001:db8::1]:22` → ("2001:db8::1", 22); anything else → (text, None)."""
    for form in (_BRACKETED_WITH_PORT, _WITH_PORT):
        found = form.fullmatch(text)
        if found:
            return found.group(1), int(found.group(2))
    return text, None


def is_ipv6(text: str) -> bool:
    """Ansible's IPv6 test: text beginning like an IPv6 address (ranges such as `[a:f]` standing for groups)."""
    return _IPV6_BEGINNING.match(text) is not None or _IPV4_MAPPED_IPV6.fullmatch(text) is not None


def is_hostname(text: str) -> bool:
    """A DNS-like name (underscores allowed, lengths not enforced) or dotted IPv4 address, ranges allowed."""
    return _HOSTNAME.fullmatch(text) is not None


def parse_address(text: str) -> tuple[str, int | None] | None:
    """(host, port) when `text` is a host identifier with an optional port, None when it is not one."""
    host, port = split_port(text)
    if is_ipv6(host) or is_hostname(host):
        return host, port
    return None
