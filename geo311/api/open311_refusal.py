"""Open311's error shape for requests refused before they reach a route (a NUL character, JSON
nested without end): the same ``<errors>`` document the routes answer with."""

from __future__ import annotations

from datetime import UTC

from starlette.responses import Response

from geo311.kernel.errors import AppError
from geo311.resident.open311.errors import descriptions, open311_status
from geo311.resident.open311.formats import MEDIA_TYPES, Format, render_list
from geo311.resident.open311.schemas import ErrorOut


def refusal(path: str, exc: AppError) -> Response:
    """Return ``exc`` as an Open311 ``errors`` document in the format the path names."""
    fmt: Format = "json" if path.endswith(".json") else "xml"
    status = open311_status(exc)
    errors = [ErrorOut(code=status, description=t) for t in descriptions(exc)]
    return Response(
        render_list("errors", errors, fmt, UTC),
        status_code=status,
        media_type=MEDIA_TYPES[fmt],
        headers=exc.headers,
    )


ERRORS_RESPONSE = {
    "description": "GeoReport v2 errors: 400 bad input, 403 a missing or bad api_key, 404 unknown",
    "content": {
        "text/xml": {"schema": {"type": "string"}},
        "application/json": {
            "schema": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "description"],
                    "properties": {
                        "code": {"type": "integer"},
                        "description": {"type": "string"},
                    },
                },
            }
        },
    },
}
"""The OpenAPI response of every Open311 error."""
