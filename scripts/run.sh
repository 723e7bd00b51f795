#!/usr/bin/env bash
# The main job: set up, then serve MCP over stdio on this machine's system bus — or, where the machine has
# no system bus, inside fleetbus's sandbox of real services. Use this script as an MCP client's command.
# `scripts/run.sh --help` says which arguments it takes. Only the MCP stream goes to stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
  cat >&2 <<USAGE
Usage: scripts/run.sh [serve] [--sandbox] [--units DIR] [--base DIR] [fleetbus serve options…]
  --sandbox      serve inside the sandbox even where a system bus answers
  --units DIR    install these unit files in the sandbox's service manager (implies --sandbox)
  --base DIR     where the sandbox directory is made (implies --sandbox)
Everything else (--safety, --policy, --config, --state-dir, …) goes to \`fleetbus serve\`. A leading
\`serve\` is accepted, so this script can stand wherever a fleetbus command does (client-config --exec).
Everything but the MCP stream (this script, setup, the server's log) goes to stderr.
USAGE
}

sandbox=0 sandbox_args=() serve_args=()
if [ "${1:-}" = "serve" ]; then
  shift
fi
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --sandbox) sandbox=1 ;;
    --units | --base)
      if [ $# -lt 2 ]; then
        echo "run.sh: error: $1 needs a directory" >&2
        exit 2
      fi
      sandbox=1 sandbox_args+=("$1" "$2")
      shift
      ;;
    --units=* | --base=*) sandbox=1 sandbox_args+=("$1") ;;
    *) serve_args+=("$1") ;;
  esac
  shift
done

"$here/scripts/setup.sh"
fleetbus="$here/.venv/bin/fleetbus"

address="${DBUS_SYSTEM_BUS_ADDRESS:-unix:path=/run/dbus/system_bus_socket}"
if [ $sandbox -eq 0 ] && ! busctl --address="$address" --timeout=2 status org.freedesktop.DBus >/dev/null 2>&1; then
  echo "fleetbus: no system bus at $address; serving inside the sandbox of real services (needs root)" >&2
  sandbox=1
fi

# The command an MCP client runs to get exactly this, arguments included, as JSON.
given="$("$here/.venv/bin/python" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \
  "${sandbox_args[@]}" "${serve_args[@]}")"
cat >&2 <<INFO
fleetbus: serving MCP on stdio. To use it from an MCP client, configure this command:
  {"mcpServers": {"fleetbus": {"command": "$here/scripts/run.sh", "args": $given}}}
Approval requests are decided from any shell with:  $fleetbus approvals   and   $fleetbus approve ID
INFO

if [ $sandbox -eq 0 ]; then
  echo "fleetbus: using the system bus at $address" >&2
  exec "$fleetbus" serve "${serve_args[@]}"
fi
exec "$fleetbus" sandbox run "${sandbox_args[@]}" -- "$fleetbus" serve "${serve_args[@]}"
