"""`limit`/`offset` pagination (API.md §1.3): typed query parameters (out of range → 400
`validation_error` through the app's RequestValidationError handler) and the `pagination` object."""

from typing import Annotated, Any

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (1–100).")]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]
DEFAULT_LIMIT = 20


def pagination(limit: int, offset: int, total: int) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "total": total, "has_more": offset + limit < total}
