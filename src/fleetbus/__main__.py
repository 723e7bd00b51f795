"""`python -m fleetbus` is the same as the `fleetbus` command."""

from fleetbus.cli import main

raise SystemExit(main())
