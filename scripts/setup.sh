#!/usr/bin/env bash
# Installs what fleetbus needs on Debian 12, idempotently: Debian packages, then a virtualenv in .venv.
# Everything it says goes to stderr, so `run.sh` can be an MCP client's stdio command.
# Usage: scripts/setup.sh [--dev]
# Conditions are written as `if`, never `[ … ] && action`: that form returns 1 when the test is false, which
# under `set -e` (or as the script's last command) silently fails the whole run.
set -euo pipefail
exec 3>&1 1>&2
cd "$(dirname "$0")/.."

dev=0
if [ "${1:-}" = "--dev" ]; then
  dev=1
fi

packages=(dbus dbus-daemon dbus-bin systemd polkitd util-linux python3 python3-venv python3-pip)
# The tests also drive the server with curl, as a user who cannot read this checkout, and start simulated hosts
# (sandbox --hosts): an sshd each in its own network namespace, reached with ssh through nsenter and socat,
# faults made with iptables.
if [ $dev -eq 1 ]; then
  packages+=(curl openssh-server openssh-client socat iptables iproute2)
fi
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # Installing a daemon (openssh-server) must not start it on the machine: the simulated hosts run their own
  # sshd inside their namespaces, and nothing may listen on the machine's network. policy-rc.d says so to
  # Debian's maintainer scripts; one made here is removed again.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  status=0
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
  if [ $made_policy -eq 1 ]; then
    $sudo rm -f /usr/sbin/policy-rc.d
  fi
  if [ $status -ne 0 ]; then
    exit $status
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

# A development install includes the plain one, so either stamp satisfies run.sh.
extras="" stamps=(.venv/.installed .venv/.installed-dev)
if [ $dev -eq 1 ]; then
  extras="[dev]" stamps=(.venv/.installed-dev)
fi
current=0
for stamp in "${stamps[@]}"; do
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    current=1
  fi
done
if [ $current -eq 0 ]; then
  echo "setup: installing fleetbus${extras} into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".${extras}"
  touch .venv/.installed
  if [ $dev -eq 1 ]; then
    touch .venv/.installed-dev
  fi
fi
