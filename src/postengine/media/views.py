"""The media object (API.md §5.1) from a row of `repository.OBJECT_COLUMNS`, as plain dicts:
listing 100 items through pydantic would cost more than the query that found them."""

from typing import Any

from postengine.kit.clock import iso
from postengine.media.repository import ObjectRow


def media_object(row: ObjectRow, base_url: str) -> dict[str, Any]:
    (
        media_id,
        media_type,
        status,
        filename,
        content_type,
        size,
        width,
        height,
        duration,
        storage_key,
        thumbnail_key,
        source,
        ai_model,
        ai_prompt,
        ai_aspect_ratio,
        created_at,
    ) = row
    return {
        "id": media_id,
        "media_id": media_id,
        "type": media_type,
        "status": status,
        "filename": filename,
        "content_type": content_type,
        "mime_type": content_type,
        "size": size,
        "file_size": size,
        "width": width,
        "height": height,
        "duration": duration,
        "url": f"{base_url}/{storage_key}",
        "thumbnail_url": f"{base_url}/{thumbnail_key}" if thumbnail_key else None,
        "source": source,
        "ai": (
            {"model": ai_model, "prompt": ai_prompt, "aspect_ratio": ai_aspect_ratio}
            if source == "ai"
            else None
        ),
        "created_at": iso(created_at),
    }
