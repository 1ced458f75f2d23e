"""JSON parsing with a nesting limit, for every document that comes from outside: API request
bodies and documents fetched from data sources. Python's parser recurses once per nested array
or object, so a body of 100,000 `[` is a RecursionError (a 500 in a view, a crash in a worker)
unless the depth is checked before parsing."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from django.conf import settings

# A JSON string, escapes included (the "unrolled loop" form: linear, no backtracking).
# A string that never closes runs to the end of the text (the parser stops there too), and so
# does a last lone backslash: every match attempt succeeds, so the scan never starts over
# (an unclosed string of escaped quotes was quadratic).
_STRING = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# A \uD800-\uDFFF escape: with bytes decoded strictly (raw UTF-8 surrogates are no UTF-8),
# the only way a surrogate gets into a parsed document.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONTooDeep(ValueError):
    """The document nests arrays and objects deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels is refused.")
        self.limit = limit


class JSONLoneSurrogate(ValueError):
    """A string of the document holds half of a UTF-16 surrogate pair, which is no character
    (no database or encoder accepts it: a UnicodeEncodeError where the text is written)."""

    def __init__(self) -> None:
        super().__init__(
            "JSON text with a lone surrogate (an unpaired \\uD800-\\uDFFF escape) is refused."
        )


def max_depth() -> int:
    return int(settings.JSON_MAX_DEPTH)


def nesting(text: str) -> int:
    """How deep arrays and objects nest in `text`, counting brackets outside strings.

    For a document the parser accepts this is its exact depth; for a broken one it is at least
    as deep as the parser would recurse before failing (the parser stops at the first error,
    and up to there strings and brackets are read the same way)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def _holds_surrogate(document: Any) -> bool:
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def loads(data: str | bytes | bytearray, *, limit: int | None = None, **kwargs: Any) -> Any:
    """`json.loads`, refusing documents nested deeper than `limit` (JSON_MAX_DEPTH) with
    `JSONTooDeep` and strings with a lone surrogate with `JSONLoneSurrogate`: ValueErrors
    like every other parse error."""
    if isinstance(data, bytes | bytearray):
        text = bytes(data).decode(json.detect_encoding(data))
    else:
        text = data
    limit = max_depth() if limit is None else limit
    if nesting(text) > limit:
        raise JSONTooDeep(limit)
    document = json.loads(text, **kwargs)
    # Pairs are fine (they decode to one character); only then is the document walked.
    if _SURROGATE_ESCAPE.search(text) and _holds_surrogate(document):
        raise JSONLoneSurrogate
    return document
