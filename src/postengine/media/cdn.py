"""`/cdn`: the embedded stand-in for a CDN in front of the media bucket (API.md §4.6).

No API key (like a CDN URL); the media id's 96 random bits make URLs unguessable. Only paths of
the exact form we create are served, and only regular files reached without a symbolic link
(`LocalStorage.stat`), so no traversal or link trick reaches another file.
"""

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from postengine.context import get_ctx
from postengine.errors import NotFound
from postengine.media.storage.local import InvalidKey, LocalStorage

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "pdf": "application/pdf",
    "heic": "image/heic",
    "heif": "image/heif",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@router.api_route("/cdn/media/{media_id}/{name}", methods=["GET", "HEAD"])
async def serve_media(request: Request, media_id: str, name: str) -> Response:
    storage = get_ctx(request).storage
    if not isinstance(storage, LocalStorage):
        raise NotFound("Media is served from the configured public media URL, not from this server.")
    key = f"media/{media_id}/{name}"
    try:
        path = storage.path_for(key)
        # A link, a linked folder, a FIFO or anything else planted in the folder is "not found".
        st = await storage.stat(key)
    except (InvalidKey, FileNotFoundError):
        raise NotFound("No such media file.") from None
    # Files are written once under a fresh id and never change: size + mtime identify the bytes.
    etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    # nosniff: uploaded bytes are served as the type they were checked to be, never re-guessed.
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if etag in (request.headers.get("if-none-match") or ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(
        path, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]], headers=headers, stat_result=st
    )
