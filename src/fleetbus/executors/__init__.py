"""Executors below the gateway for effects that are not D-Bus calls: host facts and the journal, read through a
host's command runner (this machine's subprocesses, or a remote host's SSH runner) with the same parsers."""
