#!/usr/bin/env bash
# The main job: set up, then serve MCP over stdio on this machine's system bus — or, where the machine has
# no system bus, inside fleetbus's sandbox of real services. Use this script as an MCP client's command.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/setup.sh"
fleetbus="$here/.venv/bin/fleetbus"

cat >&2 <<INFO
fleetbus: serving MCP on stdio. To use it from an MCP client, configure this command:
  {"mcpServers": {"fleetbus": {"command": "$here/scripts/run.sh"}}}
or try it by hand:   $fleetbus tool list_services
INFO

address="${DBUS_SYSTEM_BUS_ADDRESS:-unix:path=/run/dbus/system_bus_socket}"
if busctl --address="$address" --timeout=2 status org.freedesktop.DBus >/dev/null 2>&1; then
  echo "fleetbus: using the system bus at $address" >&2
  exec "$fleetbus" serve
fi
echo "fleetbus: no system bus here; starting the sandbox of real services (needs root)" >&2
exec "$fleetbus" sandbox run -- "$fleetbus" serve
