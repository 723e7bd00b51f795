"""What a host is for, inferred from the units it has: web server, database, container host, message broker…
Pure knowledge and matching, so it is tested without a host."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

ROLES: dict[str, tuple[str, ...]] = {
    "web server": ("nginx", "apache2", "httpd", "caddy", "lighttpd", "traefik", "envoy", "h2o"),
    "load balancer": ("haproxy", "keepalived", "pound"),
    "application server": ("php*-fpm", "gunicorn*", "uwsgi*", "tomcat*", "puma*", "unicorn*", "jetty*"),
    "database": (
        "postgresql*",
        "mysql*",
        "mariadb*",
        "mongod",
        "mongodb",
        "cassandra",
        "clickhouse-server",
        "cockroach*",
        "influxdb",
        "timescaledb",
    ),
    "cache": ("redis*", "memcached", "varnish*", "squid", "valkey*", "keydb*"),
    "search": ("elasticsearch", "opensearch", "solr", "meilisearch"),
    "container host": ("docker", "containerd", "podman", "crio", "cri-o", "lxd", "incus"),
    "kubernetes node": ("kubelet", "k3s*", "rke2-*", "microk8s*"),
    "message broker": ("rabbitmq-server", "kafka", "mosquitto", "nats-server", "activemq", "emqx", "redpanda"),
    "mail server": ("postfix*", "exim4", "dovecot", "opendkim", "rspamd"),
    "dns server": ("named", "bind9", "unbound", "dnsmasq", "pdns*", "knot"),
    "monitoring": ("prometheus", "grafana-server", "alertmanager", "zabbix-server", "icinga2", "netdata"),
    "ci runner": ("jenkins", "gitlab-runner", "buildkite-agent", "actions.runner.*"),
    "file server": ("nfs-server", "nfs-kernel-server", "smbd", "vsftpd", "proftpd", "minio"),
    "virtualization host": ("libvirtd", "qemu-*", "pve*", "xen*"),
    "vpn gateway": ("openvpn*", "wg-quick@*", "strongswan*", "ipsec"),
    "directory service": ("slapd", "krb5-kdc", "freeipa*", "389-ds*"),
}
"""Roles and the unit names (without .service/.socket, globs allowed) that give them away."""
UNIT_SUFFIXES = (".service", ".socket")
_MATCHERS = {role: re.compile("|".join(fnmatch.translate(p) for p in patterns)) for role, patterns in ROLES.items()}
"""One regular expression per role: a host has hundreds of units, and fnmatch per unit and pattern cost ~3 ms
of every health_check."""


def fingerprint(units: Iterable[str]) -> list[dict[str, Any]]:
    """Roles with the units that show them, strongest evidence (most units) first."""
    stems = sorted(
        {unit.rsplit(".", 1)[0] for unit in units if unit.endswith(UNIT_SUFFIXES) and not unit.startswith("-")}
    )
    found: list[dict[str, Any]] = []
    for role, matcher in _MATCHERS.items():
        evidence = [stem for stem in stems if matcher.match(stem)]
        if evidence:
            found.append({"role": role, "units": evidence[:5]})
    found.sort(key=lambda item: -len(item["units"]))
    return found
