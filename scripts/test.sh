#!/usr/bin/env bash
# Set up (Debian packages, .venv with dev tools), then lint, type-check and run every test tier.
# Integration and end-to-end tests start real services in sandboxes, which needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -n 2 "$@"
