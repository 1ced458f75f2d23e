"""OpenAPI schema generation (drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class DocumentedErrorsSchema(AutoSchema):
    """Every operation documents the error responses the API can give, in their one shape."""

    READ_ERRORS = ("400", "401", "403", "404", "429")
    WRITE_ERRORS = ("409", "413")

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction=direction)
        if direction != "response":
            return responses
        from bizdevops.api import ErrorSerializer  # not at import time: DRF loads this early

        codes = list(self.READ_ERRORS)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += self.WRITE_ERRORS
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        return responses


def refuse_unknown_fields(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Request bodies refuse unknown fields (StrictSerializer): say so in the schema."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result
