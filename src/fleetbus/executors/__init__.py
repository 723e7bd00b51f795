"""Executors below the gateway for effects that are not D-Bus calls: commands (the journal) and metrics."""
