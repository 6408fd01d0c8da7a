"""The keywords: the whole trimmed text, any case; a keyword inside a text is text."""

from __future__ import annotations

import pytest

from pbxsms.core.optout.keywords import keyword_of


@pytest.mark.parametrize(("body", "kind"), [
    ("STOP", "stop"), ("stop", "stop"), ("  Stop \n", "stop"), ("STOPALL", "stop"),
    ("unsubscribe", "stop"), ("Cancel", "stop"), ("END", "stop"), ("quit", "stop"),
    ("START", "start"), ("unstop", "start"), ("HELP", "help"), ("info", "help"),
])
def test_keywords(body: str, kind: str) -> None:
    assert keyword_of(body) == kind


@pytest.mark.parametrize("body", ["", "STOP IT", "please stop", "stop.", "STARTED", "HELP ME",
                                  "S T O P", "UNSUBSCRIBE NOW"])
def test_other_texts_are_not_keywords(body: str) -> None:
    assert keyword_of(body) is None
