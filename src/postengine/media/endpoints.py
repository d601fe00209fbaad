"""`/media` (API.md §5) and the signed upload URL. Thin: the rules live in `service`, `receive`, `fetch`."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from postengine.auth.dependencies import ReadCaller, WriteCaller
from postengine.context import get_ctx
from postengine.envelope import EnvelopeResponse, ok
from postengine.idempotency import Recorder
from postengine.idempotency import service as idempotency
from postengine.kit.body import read_json
from postengine.kit.pagination import PageQuery
from postengine.kit.query import QueryModel
from postengine.media import fetch, receive, service
from postengine.media.kinds import MediaSource, MediaStatus, MediaType
from postengine.media.schemas import (
    DeletedMedia,
    MediaList,
    MediaObject,
    UploadFromUrlRequest,
    UploadReceived,
    UploadRequest,
    UploadTicket,
)
from postengine.openapi import body_schema, envelope_of, error_responses, idempotent

router = APIRouter(tags=["Media"])
# The signed upload URL (`PUT`, no API key), outside /api/v1.
uploads_router = APIRouter(tags=["Media"])


class MediaListQuery(PageQuery):
    """`GET /media`'s query (API.md §5.2)."""

    media_type: MediaType | None = Field(None, alias="type", description="image, video or document")
    source: MediaSource | None = Field(None, description="upload or ai")
    status: MediaStatus | None = Field(None, description="uploading, ready or failed")


LIST_QUERY = QueryModel(MediaListQuery)
ListQuery = Annotated[MediaListQuery, Depends(LIST_QUERY)]


@router.post(
    "/media/upload",
    status_code=201,
    summary="Start an upload",
    description="Returns a signed `upload_url` that takes the file's bytes with a plain `PUT` (no API key) "
    "for 15 minutes; then call `POST /media/{id}/complete`. Requires the `write` scope.",
    response_model=envelope_of(UploadTicket),
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 429),
    openapi_extra=idempotent(body_schema(UploadRequest), 201),
)
async def start_upload(request: Request, caller: WriteCaller) -> Response:
    async def run(record: Recorder | None) -> tuple[int, Any]:
        body = await read_json(request, UploadRequest)
        ticket = await service.start_upload(get_ctx(request), caller, body, str(request.base_url), record)
        return 201, ticket.model_dump(mode="json")

    return await idempotency.respond(request, caller, run)


@router.post(
    "/media/upload-from-url",
    summary="Add a file from a public URL",
    description="The server fetches a public `https://` file (at most 25 MiB); private, loopback, link-local "
    "and metadata addresses are refused, also after redirects. Requires the `write` scope.",
    response_model=envelope_of(MediaObject),
    responses=error_responses(400, 401, 403, 413, 415, 429),
    openapi_extra=body_schema(UploadFromUrlRequest),
)
async def upload_from_url(request: Request, caller: WriteCaller) -> EnvelopeResponse:
    body = await read_json(request, UploadFromUrlRequest)
    return ok(request, await fetch.upload_from_url(get_ctx(request), caller, body))


@router.post(
    "/media/{media_id}/complete",
    summary="Finish an upload",
    description="Checks the uploaded bytes (type, size, dimensions), makes a thumbnail for images and returns "
    "the media item, `ready`. 409 `upload_incomplete` before the bytes arrived.",
    response_model=envelope_of(MediaObject),
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 429),
)
async def complete_upload(request: Request, caller: WriteCaller, media_id: str) -> EnvelopeResponse:
    return ok(request, await service.complete_upload(get_ctx(request), caller, media_id))


@router.get(
    "/media",
    summary="List media",
    description="Newest first. Requires the `read` scope.",
    response_model=envelope_of(MediaList),
    responses=error_responses(400, 401, 403, 429),
    openapi_extra=LIST_QUERY.openapi(),
)
async def list_media(request: Request, caller: ReadCaller, query: ListQuery) -> EnvelopeResponse:
    page = await service.list_media(
        get_ctx(request),
        caller,
        media_type=query.media_type,
        source=query.source,
        status=query.status,
        limit=query.limit,
        offset=query.offset,
    )
    return ok(request, page)


@router.get(
    "/media/{media_id}",
    summary="Get a media item",
    response_model=envelope_of(MediaObject),
    responses=error_responses(401, 403, 404, 429),
)
async def get_media(request: Request, caller: ReadCaller, media_id: str) -> EnvelopeResponse:
    return ok(request, await service.get_media(get_ctx(request), caller, media_id))


@router.delete(
    "/media/{media_id}",
    summary="Delete a media item",
    description="409 `media_in_use` while a scheduled or publishing post uses it, unless `force=true`.",
    response_model=envelope_of(DeletedMedia),
    responses=error_responses(400, 401, 403, 404, 409, 429),
)
async def delete_media(
    request: Request,
    caller: WriteCaller,
    media_id: str,
    force: Annotated[bool, Query(description="Delete even if a scheduled post uses it.")] = False,
) -> EnvelopeResponse:
    await service.delete_media(get_ctx(request), caller, media_id, force=force)
    return ok(request, {"id": media_id, "media_id": media_id, "deleted": True})


@uploads_router.put(
    "/uploads/{media_id}",
    summary="Upload a file's bytes (signed URL)",
    description="The `upload_url` of `POST /api/v1/media/upload`: send exactly the declared bytes with a "
    "plain `PUT`. No API key: the URL's signature is the credential.",
    response_model=envelope_of(UploadReceived),
    responses=error_responses(400, 403, 409, 413, 415),
)
async def put_upload(request: Request, media_id: str) -> EnvelopeResponse:
    received = await receive.receive_upload(
        get_ctx(request),
        media_id,
        expires=request.query_params.get("expires"),
        signature=request.query_params.get("signature"),
        content_length=request.headers.get("content-length"),
        body=request.stream(),
    )
    return ok(request, received.model_dump(mode="json"))
