"""Rows → the API's post object (API.md §7.3), as plain dicts serialised by orjson.

Rows are read by position (a `Row` from SQLAlchemy or a plain tuple from the SQLite list path, see
`repository.PostRow`): a list page builds a few hundred of these values per request.
"""

from datetime import datetime
from typing import Any

from postengine.posts.repository import PostRow, PostRows


def _iso(value: datetime | None) -> str | None:
    """`kit.clock.iso` for the repository's datetimes, which are always UTC: ISO 8601,
    milliseconds, `Z` (API.md §1.1)."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


def destination(row: PostRow) -> dict[str, Any]:
    (
        destination_id,
        _post_id,
        account_id,
        account_name,
        platform,
        status,
        platform_post_id,
        platform_post_url,
        published_at,
        error,
        attempts,
        next_retry_at,
    ) = row
    return {
        "id": destination_id,
        "account_id": account_id,
        "account_name": account_name,
        "platform": platform,
        "status": status,
        "platform_post_id": platform_post_id,
        "platform_post_url": platform_post_url,
        "published_at": _iso(published_at),
        "error": error,
        "attempts": attempts,
        "next_retry_at": _iso(next_retry_at),
    }


def media_item(row: PostRow, url_prefix: str) -> dict[str, Any]:
    """`url_prefix`: the media base URL with its trailing `/`."""
    _post_id, media_id, media_type, width, height, storage_key = row
    return {
        "media_id": media_id,
        "type": media_type,
        "width": width,
        "height": height,
        "url": url_prefix + storage_key,
    }


def post(row: PostRow, rows: PostRows, media_base_url: str) -> dict[str, Any]:
    return _post(row, rows, media_base_url + "/")


def posts(rows: PostRows, media_base_url: str) -> list[dict[str, Any]]:
    url_prefix = media_base_url + "/"
    return [_post(row, rows, url_prefix) for row in rows.posts]


def _post(row: PostRow, rows: PostRows, url_prefix: str) -> dict[str, Any]:
    post_id, status, content, scheduled_for, timezone, platform_content, created_at, updated_at = row
    destinations = [destination(d) for d in rows.destinations.get(post_id, ())]
    media = [media_item(m, url_prefix) for m in rows.media.get(post_id, ())]
    return {
        "id": post_id,
        "post_id": post_id,
        "status": status,
        "content": content,
        "account_ids": [d["account_id"] for d in destinations],
        "media_ids": [m["media_id"] for m in media],
        "media": media,
        "scheduled_for": _iso(scheduled_for),
        "timezone": timezone,
        "platform_content": platform_content or {},
        "destinations": destinations,
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
    }
