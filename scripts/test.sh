#!/usr/bin/env bash
# Set up (Debian packages, .venv with dev tools), then lint, type-check and run every test tier.
# Integration and end-to-end tests start real services in sandboxes, which needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
# MCP clients nobody on this team wrote (the MCP Inspector CLI, the conformance suite) and the Node 22 they need,
# from the lock file into tests/node/node_modules; again only when the lock file changed.
if [ ! -f tests/node/node_modules/.package-lock.json ] \
    || [ tests/node/package-lock.json -nt tests/node/node_modules/.package-lock.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# loadgroup: tests sharing an expensive fixture (the fresh clone of test_first_run) stay on one worker.
.venv/bin/pytest -n 2 --dist loadgroup "$@"
