"""Nearest names for a name that is not there: every "unknown X" message names the closest few and a bounded
number of the rest the same way, so a model can correct itself in one step instead of guessing."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Sequence

MAX_SUGGESTIONS = 3
MAX_LISTED = 12
"""Names listed after the suggestions: enough to show the shape of what there is, not the whole of it."""
MAX_LISTED_CHARS = 300
CUTOFF = 0.6
"""difflib's similarity ratio below which a name is no suggestion (its own default for get_close_matches)."""
MIN_WORD = 4
"""Shorter words (get, set, by, dbus…) are shared by too many names to say which one was meant."""

SEPARATORS = "._-/"
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def words(name: str) -> set[str]:
    """The words of a name in any of the spellings D-Bus and tools use: snake_case, CamelCase, dotted, dashed."""
    return {word.lower() for word in _WORD.findall(name) if len(word) >= MIN_WORD}


def _spelling(wanted: str, candidate: str) -> float:
    """difflib's ratio after the leading parts both share: `org.freedesktop.` makes every name in that namespace
    look alike, and it is the part after it that was misspelt."""
    pairs = enumerate(zip(wanted, candidate, strict=False))
    same = next((i for i, (a, b) in pairs if a != b), min(len(wanted), len(candidate)))
    shared = wanted[:same]
    cut = max(shared.rfind(separator) for separator in SEPARATORS) + 1
    rest, other = wanted[cut:], candidate[cut:]
    if not rest or not other:
        return 1.0 if rest == other else 0.0
    return difflib.SequenceMatcher(None, rest, other, autojunk=False).ratio()


def _score(wanted: str, wanted_words: set[str], candidate: str) -> float:
    folded = candidate.casefold()
    score = _spelling(wanted, folded)
    shared = wanted_words & words(candidate)
    if shared:
        # A shared word ("restart" in restart_service and restart_unit) says more than spelling alone.
        score = max(score, CUTOFF + 0.1 * len(shared))
    if len(wanted) >= MIN_WORD and (wanted in folded or folded in wanted):
        score = max(score, CUTOFF + 0.05)
    return score


def nearest(name: str, candidates: Iterable[str], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """The candidates closest to `name`, best first, ignoring case: by spelling, by shared words, by containment."""
    pool = list(dict.fromkeys(candidates))
    wanted = name.casefold()
    # A word most candidates share (freedesktop in org.freedesktop.*) tells them apart no better than none.
    frequency = Counter(word for candidate in pool for word in words(candidate))
    wanted_words = {word for word in words(name) if frequency[word] <= max(1, len(pool) // 2)}
    scored = []
    for candidate in pool:
        score = _score(wanted, wanted_words, candidate)
        if score >= CUTOFF and candidate != name:
            scored.append((-score, candidate))
    return [candidate for _, candidate in sorted(scored)[:limit]]


def plural(noun: str) -> str:
    if noun.endswith("y") and not noun.endswith(("ay", "ey", "oy")):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "x")) else "s")


def either(names: Sequence[str]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def bounded(names: Sequence[str], limit: int = MAX_LISTED, max_chars: int = MAX_LISTED_CHARS) -> str:
    """`a, b, c` — at most `limit` names and about `max_chars` characters, with `…` when some were left out."""
    shown: list[str] = []
    size = 0
    for name in names[:limit]:
        if shown and size + len(name) + 2 > max_chars:
            break
        shown.append(name)
        size += len(name) + 2
    return ", ".join(shown) + (", …" if len(shown) < len(names) else "")


def unknown(
    what: str,
    name: str,
    known: Iterable[str],
    *,
    owner: str | None = None,
    argument: str | None = None,
    see: str | None = None,
    listed: int = MAX_LISTED,
) -> str:
    """The one message for a name that does not exist, e.g.

    `org.example.Manager has no method 'GetUnitt'; did you mean GetUnit? (it has 98 methods: …; introspect lists
    them all)` — the owner (else `unknown {what} …`), the argument that carried the name, the nearest names, up to
    `listed` of the `known` ones in their given order, and `see`: where to look for the rest. `listed=0` lists
    none, for sets too large to show.
    """
    names = list(dict.fromkeys(known))
    message = f"{owner} has no {what} {name!r}" if owner else f"unknown {what} {name!r}"
    if argument:
        message += f" (argument {argument!r})"
    close = nearest(name, names)
    if close:
        message += f"; did you mean {either(close)}?"
    details = []
    subject = "it has" if owner else "there are"
    if listed and not names:
        details.append(f"{subject} none")
    elif listed:
        count = f"{len(names)} {what if len(names) == 1 else plural(what)}"
        details.append(f"{subject} {count}: {bounded(names, listed)}")
    if see:
        details.append(see)
    if details:
        message += f" ({'; '.join(details)})"
    return message
