"""The API's JSON parser (its own module: DRF reads DEFAULT_PARSER_CLASSES while importing
its views, which `bizdevops.api` imports)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from bizdevops import jsonsafe


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser with a nesting limit (JSON_MAX_DEPTH): a body of 100,000 `[` is a
    400, not a RecursionError; so is a string with a lone surrogate escape, which would be a
    UnicodeEncodeError wherever it is written or looked up. NaN and Infinity stay refused
    (DRF's strict JSON)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = stream.read().decode(encoding)
            return jsonsafe.loads(text, parse_constant=json.strict_constant)
        except (jsonsafe.JSONTooDeep, jsonsafe.JSONLoneSurrogate) as exc:
            raise ParseError(str(exc)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
