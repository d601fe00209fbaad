"""`/posts` (API.md §7). Thin: authentication, scope and rate limits (the `posts` windows apply to
`POST /posts` only, API.md §3), then the body, then `service`."""

from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from postengine.auth.authenticator import Caller
from postengine.auth.dependencies import ReadCaller, WriteCaller, access
from postengine.auth.scopes import Scope
from postengine.context import get_ctx
from postengine.envelope import EnvelopeResponse, ok
from postengine.errors import ValidationFailed
from postengine.idempotency import Recorder
from postengine.idempotency import service as idempotency
from postengine.kit.body import parse_model, read_json
from postengine.kit.query import QueryModel
from postengine.openapi import body_schema, envelope_of, error_responses, idempotent
from postengine.posts import service
from postengine.posts.repository import PostFilters
from postengine.posts.schemas import (
    CreatedPost,
    CreatePostRequest,
    DeletedPost,
    Platform,
    PostList,
    PostListQuery,
    PostObject,
    PostResults,
    PostStatus,
    RetryResult,
    UpdatePostRequest,
    as_utc,
)
from postengine.ratelimit.rules import RateLimitScope

router = APIRouter(tags=["Posts"])

PostsWriteCaller = Annotated[Caller, Depends(access(Scope.WRITE, RateLimitScope.POSTS))]
LIST_QUERY = QueryModel(PostListQuery)
ListQuery = Annotated[PostListQuery, Depends(LIST_QUERY)]
M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", PostStatus, Platform)


class _AnyObject(BaseModel):
    model_config = ConfigDict(extra="allow")


async def _read_body(request: Request, model: type[M]) -> M:
    raw = await read_json(request, _AnyObject)
    payload: dict[str, Any] = raw.model_extra or {}
    service.reject_misspellings(payload)
    return parse_model(model, payload)


def _choices(field: str, value: str | None, kind: type[E]) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    valid = [member.value for member in kind]
    bad = [name for name in names if name not in valid]
    if bad:
        raise ValidationFailed(
            [
                {
                    "field": field,
                    "message": f"{field} must be a comma-separated list of: {', '.join(valid)} (got {bad[0][:40]!r})",
                }
            ]
        )
    return tuple(dict.fromkeys(names))


def _utc(field: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(value, field)
    except ValueError as exc:
        raise ValidationFailed([{"field": field, "message": str(exc)}]) from None


@router.post(
    "/posts",
    status_code=201,
    summary="Create a post",
    description="Publish now, schedule (`scheduled_at`, alias `scheduled_for`), or save a draft. "
    "Requires the `write` scope; counts against the `posts` rate limits.",
    response_model=envelope_of(CreatedPost),
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429),
    openapi_extra=idempotent(body_schema(CreatePostRequest), 201),
)
async def create_post(request: Request, caller: PostsWriteCaller) -> Response:
    async def run(record: Recorder | None) -> tuple[int, Any]:
        body = await _read_body(request, CreatePostRequest)
        return 201, await service.create_post(get_ctx(request), caller, body, record)

    return await idempotency.respond(request, caller, run)


@router.get(
    "/posts",
    summary="List posts",
    response_model=envelope_of(PostList),
    responses=error_responses(400, 401, 403, 429),
    openapi_extra=LIST_QUERY.openapi(),
)
async def list_posts(request: Request, caller: ReadCaller, query: ListQuery) -> EnvelopeResponse:
    filters = PostFilters(
        statuses=_choices("status", query.status, PostStatus),
        platforms=_choices("platform", query.platform, Platform),
        account_id=query.account_id,
        scheduled_after=_utc("scheduled_after", query.scheduled_after),
        scheduled_before=_utc("scheduled_before", query.scheduled_before),
        search=query.search or None,
        sort=query.sort,
        order=query.order,
    )
    page = await service.list_posts(get_ctx(request), caller, filters, query.limit, query.offset)
    return ok(request, page)


@router.get(
    "/posts/{post_id}",
    summary="Get a post with its destinations",
    response_model=envelope_of(PostObject),
    responses=error_responses(401, 403, 404, 429),
)
async def get_post(request: Request, caller: ReadCaller, post_id: str) -> EnvelopeResponse:
    return ok(request, await service.get_post(get_ctx(request), caller, post_id))


@router.patch(
    "/posts/{post_id}",
    summary="Change a draft or scheduled post",
    description='Fields sent replace the stored ones. `"draft": false` schedules a draft; '
    '`"draft": true` takes a scheduled post back to draft. 409 `post_already_published` once '
    "publishing has started.",
    response_model=envelope_of(PostObject),
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 429),
    openapi_extra=body_schema(UpdatePostRequest),
)
async def update_post(request: Request, caller: WriteCaller, post_id: str) -> EnvelopeResponse:
    body = await _read_body(request, UpdatePostRequest)
    return ok(request, await service.update_post(get_ctx(request), caller, post_id, body))


@router.delete(
    "/posts/{post_id}",
    summary="Delete a draft or scheduled post",
    response_model=envelope_of(DeletedPost),
    responses=error_responses(401, 403, 404, 409, 429),
)
async def delete_post(request: Request, caller: WriteCaller, post_id: str) -> EnvelopeResponse:
    return ok(request, await service.delete_post(get_ctx(request), caller, post_id))


@router.get(
    "/posts/{post_id}/results",
    summary="Publishing results per destination",
    response_model=envelope_of(PostResults),
    responses=error_responses(401, 403, 404, 429),
)
async def post_results(request: Request, caller: ReadCaller, post_id: str) -> EnvelopeResponse:
    return ok(request, await service.post_results(get_ctx(request), caller, post_id))


@router.post(
    "/posts/{post_id}/retry",
    summary="Retry failed destinations",
    response_model=envelope_of(RetryResult),
    responses=error_responses(401, 403, 404, 429),
)
async def retry_post(request: Request, caller: WriteCaller, post_id: str) -> EnvelopeResponse:
    return ok(request, await service.retry_post(get_ctx(request), caller, post_id))
