"""`python -m fleetbus` is the same as the `fleetbus` command."""

from fleetbus.launch import main

raise SystemExit(main())
