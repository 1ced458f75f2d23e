"""The characters a text typed by one user and shown to others may not hold
(bizdevops.text.refusal, applied by bizdevops.errors.clean_text / require_text)."""

from __future__ import annotations

import pytest

from bizdevops.errors import DomainError, clean_text, require_text
from bizdevops.text import refusal

REFUSED_EVERYWHERE = [
    *[chr(c) for c in range(0x00, 0x09)],
    "\x0b",
    "\x0c",
    *[chr(c) for c in range(0x0E, 0x20)],
    "\x7f",
    *[chr(c) for c in range(0x80, 0xA0)],
    "\u061c",
    "\u200e",
    "\u200f",
    *[chr(c) for c in range(0x202A, 0x202F)],
    *[chr(c) for c in range(0x2066, 0x206A)],
    "\u200b",
    "\u2060",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\ud800",
    "\udfff",
]


@pytest.mark.parametrize("char", REFUSED_EVERYWHERE, ids=lambda c: f"U+{ord(c):04X}")
def test_refused_in_single_and_multi_line_text(char):
    assert refusal(f"a{char}b", "Title") is not None
    assert refusal(f"a{char}b", "Text", multiline=True) is not None


@pytest.mark.parametrize("char", ["\n", "\r", "\t"], ids=["LF", "CR", "TAB"])
def test_line_breaks_and_tabs_only_in_multi_line_text(char):
    assert "one line" in refusal(f"a{char}b", "Title")
    assert refusal(f"a{char}b", "Text", multiline=True) is None


@pytest.mark.parametrize(
    "value",
    [
        "Fraud caught (%)",
        "Prévision des ventes – Île-de-France",
        "مبيعات الربع",
        "売上予測",
        "می\u200cخواهم",  # ZWNJ: Persian spelling
        "देवनागरी\u200d",  # ZWJ: Indic conjuncts
        "👩\u200d💻 team",  # ZWJ emoji sequence
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # flag: tag characters
        "€ / m²",
        "\u00a0non-breaking",
    ],
)
def test_every_script_and_emoji_are_kept(value):
    assert refusal(value, "Title") is None


def test_the_message_names_the_character_and_why():
    assert refusal("Fraud\u202egnp.exe", "Title") == (
        "Title may not contain U+202E RIGHT-TO-LEFT OVERRIDE: the character changes the "
        "text's direction."
    )
    assert refusal("\x1b[31m", "The unit") == (
        "The unit may not contain the control or invisible character U+001B."
    )
    assert refusal("a\u200bb", "Name") == (
        "Name may not contain the control or invisible character U+200B ZERO WIDTH SPACE."
    )


def test_clean_text_strips_and_raises_on_the_field():
    assert clean_text("  Risk \n", "name", "Name") == "Risk"
    assert clean_text(None, "name", "Name") == ""
    with pytest.raises(DomainError) as refused:
        clean_text("Ri\u200bsk", "name", "Name")
    assert (refused.value.field, refused.value.code) == ("name", "invalid_character")


def test_require_text_checks_characters_then_presence():
    assert require_text("Line one\nline two", "reason", "A reason", multiline=True)
    with pytest.raises(DomainError, match="one line"):
        require_text("Line one\nline two", "title", "Title")
    with pytest.raises(DomainError, match="required"):
        require_text(" \t ", "title", "Title")
