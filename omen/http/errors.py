"""Rendering ApiError as an HTTP response."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from omen.errors import ApiError, invalid

__all__ = ["ApiError", "error_response", "invalid"]


def error_response(error: ApiError, extra_headers: dict[str, str] | None = None) -> Response:
    headers = dict(error.headers)
    if extra_headers:
        headers.update(extra_headers)
    return Response(
        orjson.dumps(error.body()),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )
