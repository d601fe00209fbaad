"""`limit`/`offset` pagination (API.md §1.3): the query fields every list shares (out of range →
400 `validation_error`) and the `pagination` object. List endpoints declare their query as a
subclass of `PageQuery` read through `kit.query.QueryModel`."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Far past any real list, and inside every database's integer range (a larger offset was a 500).
MAX_OFFSET = 2**31 - 1


class PageQuery(BaseModel):
    model_config = ConfigDict(frozen=True)

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page (1–100).")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Items to skip.")


def pagination(limit: int, offset: int, total: int) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "total": total, "has_more": offset + limit < total}
