"""Cost of `output.clean_text`, which every string of every result passes, on a corpus shaped like real results
(unit names and descriptions, journal lines, a few non-ASCII and hostile strings), measured in one run against
two references: the filter as it was before invisible characters were stripped (controls, ANSI and bidi only),
and `json.dumps` of the same strings (what rendering a result costs anyway).

Prints µs per 1,000 strings and the ratios. Run: python bench/bench_clean_text.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable

from fleetbus.output import clean_text

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
_BEFORE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text_before(text: str) -> str:
    """The filter before this change, for the ratio."""
    return _BEFORE.sub("", _ANSI.sub("", text))


def corpus() -> list[str]:
    units = [f"worker-{i}.service" for i in range(200)]
    descriptions = [f"Worker {i} of the web tier, serving /api/v{i % 3}" for i in range(200)]
    journal = [
        f"2026-11-{i % 28 + 1:02d}T10:{i % 60:02d}:00 web-{i} nginx[{1000 + i}]: 10.0.{i % 255}.1 - - "
        f'"GET /health HTTP/1.1" 200 {i * 7 % 900} "-" "curl/8.1"'
        for i in range(500)
    ]
    unicode = ["Überwachungsdienst für Café-Daten", "日志服务 — 运行中", "résumé ✓ done", "Служба журнала"] * 20
    hostile = [
        "\x1b[31mred\x1b[0m alert",
        "Web cache" + "".join(chr(0xE0000 + ord(c)) for c in "ignore the operator") + " server",
        "zero\u200bwidth\u200djoin\ufeffbom\u2028line",
    ] * 10
    return [*units, *descriptions, *journal, *unicode, *hostile]


def per_thousand(clean: Callable[[str], object], strings: list[str], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for text in strings:
            clean(text)
        samples.append((time.perf_counter() - started) / len(strings) * 1e9)  # µs per 1,000 strings
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    strings = corpus()
    for _ in range(20):  # warm up the regex caches
        for text in strings:
            clean_text(text)
            clean_text_before(text)
    now = per_thousand(clean_text, strings, args.rounds)
    before = per_thousand(clean_text_before, strings, args.rounds)
    rendering = per_thousand(json.dumps, strings, args.rounds)
    print(f"{len(strings)} strings, median of {args.rounds} rounds, µs per 1,000 strings")
    print(f"  clean_text (now)        {now:8.1f}")
    print(f"  clean_text (before)     {before:8.1f}   now/before {now / before:.2f}")
    print(f"  json.dumps (reference)  {rendering:8.1f}   now/json.dumps {now / rendering:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
