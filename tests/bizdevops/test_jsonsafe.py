"""The depth-checking JSON parser used for API bodies and fetched source documents."""

from __future__ import annotations

import json

import pytest

from bizdevops import jsonsafe


def _deep(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def test_a_document_at_the_limit_parses(settings):
    settings.JSON_MAX_DEPTH = 64
    assert jsonsafe.loads(_deep(64, "1")) == json.loads(_deep(64, "1"))
    assert jsonsafe.loads('{"a": {"b": [1, {"c": 2}]}}') == {"a": {"b": [1, {"c": 2}]}}


def test_one_level_deeper_is_refused(settings):
    settings.JSON_MAX_DEPTH = 64
    with pytest.raises(jsonsafe.JSONTooDeep, match="deeper than 64"):
        jsonsafe.loads(_deep(65))


def test_a_remote_document_100000_deep_is_refused_not_a_recursion_error():
    with pytest.raises(RecursionError):
        json.loads(_deep(100_000))  # what the plain parser does
    with pytest.raises(ValueError, match="nested deeper"):
        jsonsafe.loads(_deep(100_000).encode())


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"note": "[" * 1000 + '\\" {{{', "x": ["]]]", "\\\\["]})
    assert jsonsafe.nesting(text) == 2
    assert jsonsafe.loads(text) == json.loads(text)


def test_unclosed_brackets_count_as_deep():
    # A broken document still makes the parser recurse once per `[` before it fails.
    assert jsonsafe.nesting("[" * 1000) == 1000
    with pytest.raises(jsonsafe.JSONTooDeep):
        jsonsafe.loads("[" * 1000)
    # Brackets inside a string that never closes are text: the parser stops at the string
    # and recurses no further, and the document is refused as broken.
    assert jsonsafe.nesting('"unterminated' + "[" * 1000) == 0
    with pytest.raises(ValueError, match="Unterminated string"):
        jsonsafe.loads('"unterminated' + "[" * 1000)
    with pytest.raises(jsonsafe.JSONTooDeep):
        jsonsafe.loads("[" * 1000 + '"unterminated')


def test_bytes_in_any_json_encoding():
    assert jsonsafe.loads('{"v": [1.5]}'.encode("utf-16")) == {"v": [1.5]}
    assert jsonsafe.loads(b'{"v": 2}') == {"v": 2}


def test_other_errors_are_value_errors():
    with pytest.raises(ValueError):
        jsonsafe.loads("{not json")
    with pytest.raises(ValueError):
        jsonsafe.loads(b"\xff\xfe\x00")


@pytest.mark.parametrize("tail", ["", "\\"])  # a last lone backslash, too
def test_an_unclosed_string_of_escaped_quotes_is_read_in_one_pass(tail):
    # The string scan used to start over at every escaped quote of a string that never
    # closes: quadratic (160 KB took 94 s). Now the unclosed string runs to the end.
    text = '[["' + '\\"' * 500_000 + tail
    assert jsonsafe.nesting(text) == 2
    with pytest.raises(ValueError):
        jsonsafe.loads(text)


def test_raw_utf8_surrogates_are_refused():
    # Bytes that encode a surrogate are no UTF-8; they got past the surrogate check.
    with pytest.raises(ValueError):
        jsonsafe.loads(b'["\xed\xa0\x80"]')
