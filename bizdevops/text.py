"""The characters that text typed by one user and shown to others may hold.

Refused everywhere: C0 controls (but for newline, carriage return and tab in multi-line text),
DEL and C1 controls (terminal escapes, "next line"); the bidirectional marks, embeddings,
overrides and isolates (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which make
"Fraud<U+202E>gnp.exe" display as "Fraudexe.png"; the invisible U+200B zero-width space, U+2060
word joiner and U+FEFF byte-order mark, which let two names look the same (a second "Risk"
unit) and have no use in a title; U+2028 / U+2029 line and paragraph separators (a line
break is a newline here); and lone surrogates, which are no character at all and which the
database refuses to encode. Kept: the zero-width non-joiner and joiner (U+200C, U+200D),
which Persian and Indic spelling and emoji sequences need, and every letter, mark, symbol and
emoji of every script."""

from __future__ import annotations

import re
import unicodedata

_ALWAYS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 but \t \n \r, DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional formatting
    "\u200b\u2060\ufeff"  # invisible, no spelling use
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff"  # lone surrogates
)
_MULTI_LINE = re.compile(f"[{_ALWAYS}]")
_SINGLE_LINE = re.compile(f"[{_ALWAYS}\t\n\r]")


_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def refusal(value: str, label: str, *, multiline: bool = False) -> str | None:
    """Why `value` may not be stored as the text called `label`, else None."""
    found = (_MULTI_LINE if multiline else _SINGLE_LINE).search(value)
    if found is None:
        return None
    char = found.group()
    code = f"U+{ord(char):04X}"
    if char in "\t\n\r":
        return f"{label} must be one line: the line-break or tab character {code} is not allowed."
    name = unicodedata.name(char, "")
    shown = f"{code} {name}" if name else code
    if _BIDI.match(char):
        return f"{label} may not contain {shown}: the character changes the text's direction."
    return f"{label} may not contain the control or invisible character {shown}."
