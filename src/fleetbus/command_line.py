"""How every command reports a failure: argparse's own form, `PROG: error: MESSAGE` on stderr, so a person (or a
script) sees one shape whether the parser or the command refused."""

from __future__ import annotations

import sys


def print_error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
