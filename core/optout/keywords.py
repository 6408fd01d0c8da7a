"""The opt-out keywords: a whole text (trimmed, any case) that is STOP, START or HELP.

The words are those the US (CTIA) and Australian rules list; a keyword inside a longer
text ("please stop by at 5") is ordinary text.
"""

from __future__ import annotations

from typing import Literal

Keyword = Literal["stop", "start", "help"]

KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), "stop"),
    **dict.fromkeys(("START", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}


def keyword_of(body: str) -> Keyword | None:
    """What the text asks for when it is exactly a keyword; None for any other text."""
    text = body.strip()
    if len(text) > 11:  # longer than any keyword: skip the upper-casing
        return None
    return KEYWORDS.get(text.upper())
