"""The end of a message about a name that names nothing: the name that was probably meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, names: Iterable[str], *, listed_as: str, if_none: str = "") -> str:
    """``"; did you mean 'x'?"`` when one of ``names`` is close to ``word``; else every name,
    ``" (LISTED_AS: a, b)"``; else, when there are no names at all, ``if_none``."""
    choices = list(names)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" ({listed_as}: {', '.join(choices)})" if choices else if_none
