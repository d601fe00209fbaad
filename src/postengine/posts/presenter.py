"""Rows → the API's post object (API.md §7.3), as plain dicts serialised by orjson."""

from typing import Any

from sqlalchemy import Row

from postengine.kit.clock import iso
from postengine.posts.repository import PostRows


def destination(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "account_id": row.account_id,
        "account_name": row.account_name,
        "platform": row.platform,
        "status": row.status,
        "platform_post_id": row.platform_post_id,
        "platform_post_url": row.platform_post_url,
        "published_at": iso(row.published_at),
        "error": row.error,
        "attempts": row.attempts,
        "next_retry_at": iso(row.next_retry_at),
    }


def media_item(row: Row[Any], media_base_url: str) -> dict[str, Any]:
    return {
        "media_id": row.id,
        "type": row.type,
        "width": row.width,
        "height": row.height,
        "url": f"{media_base_url}/{row.storage_key}",
    }


def post(row: Row[Any], rows: PostRows, media_base_url: str) -> dict[str, Any]:
    destinations = [destination(d) for d in rows.destinations.get(row.id, ())]
    media = [media_item(m, media_base_url) for m in rows.media.get(row.id, ())]
    return {
        "id": row.id,
        "post_id": row.id,
        "status": row.status,
        "content": row.content,
        "account_ids": [d["account_id"] for d in destinations],
        "media_ids": [m["media_id"] for m in media],
        "media": media,
        "scheduled_for": iso(row.scheduled_for),
        "timezone": row.timezone,
        "platform_content": row.platform_content or {},
        "destinations": destinations,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def posts(rows: PostRows, media_base_url: str) -> list[dict[str, Any]]:
    return [post(row, rows, media_base_url) for row in rows.posts]
