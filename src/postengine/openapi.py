"""OpenAPI helpers: the envelope around every schema, and the documented error responses."""

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: invalid JSON (`invalid_json`), a field is missing or invalid (`validation_error`), "
    "or the prompt was blocked by the safety filter (`prompt_blocked`).",
    401: "Missing or invalid API key (`unauthorized`).",
    402: "Insufficient AI credits (`insufficient_credits`); carries `credits_remaining` and `credits_required`.",
    403: "The API key lacks the scope this endpoint needs (`insufficient_scope`).",
    404: "No such object in your organization, or no such route (`not_found`).",
    405: "Method not allowed (`method_not_allowed`).",
    408: "The request body stalled or arrived too slowly (`request_timeout`; the connection is closed). "
    "A body must bring 64 KiB, or end, within every 30 s.",
    409: "State conflict.",
    413: "Body over 1 MiB (`payload_too_large`).",
    415: "Body content type not accepted (`unsupported_media_type`).",
    422: "This `Idempotency-Key` was already used with a different body or endpoint (`idempotency_key_mismatch`).",
    429: "Rate limit exceeded (`rate_limit_exceeded`); see `Retry-After`.",
    500: "Image generation failed (`generation_failed`, credits refunded) or an unexpected fault (`internal_error`).",
    503: "The image provider is over capacity (`provider_unavailable`, credits refunded); rate limits cannot "
    "be checked because the shared store is unreachable (`rate_limit_unavailable`, `ai`/`posts` requests "
    "only); or the database has no free connection (`service_unavailable`; nothing was done). "
    "See `Retry-After`.",
}


class Meta(BaseModel):
    request_id: str = Field(examples=["req_5f0c2a9d1b7e4c3a8f6d2e1b"])
    timestamp: str = Field(examples=["2026-03-02T10:00:00.000Z"])


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    retryable: bool
    details: dict[str, Any]


class ErrorEnvelope(BaseModel):
    data: None
    error: ErrorBody
    meta: Meta


@cache
def envelope_of(model: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{model.__name__}Envelope",
        data=(model, ...),
        error=(None, None),
        meta=(Meta, ...),
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of an endpoint; 503 on every one of them, since any request
    can find the database without a free connection (`service_unavailable`); and 408 on every one
    that takes a body (those that document 413), which may stall (`middleware._paced`)."""
    implied = {503, 408} if 413 in statuses else {503}
    return {
        status: {"model": ErrorEnvelope, "description": ERROR_DESCRIPTIONS[status]}
        for status in sorted({*statuses, *implied})
    }


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for an endpoint that reads its JSON body itself (see `kit.body`)."""
    schema = model.model_json_schema(mode="validation")
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
        }
    }


IDEMPOTENCY_DESCRIPTION = (
    "Optional. 1–255 printable ASCII characters (a UUID is a good key), scoped to your organization. "
    "The first successful response to a key is stored for 24 hours; a retry with the same key and body "
    "gets that response byte for byte, with `Idempotent-Replayed: true`, and is not run (nor charged) "
    "again. The same key with a different body: 422 `idempotency_key_mismatch`; while the first request "
    "is still running: 409 `idempotency_in_progress` with `Retry-After`. A request that fails stores "
    "nothing, so retrying it runs it again."
)


def idempotent(extra: dict[str, Any], status: int) -> dict[str, Any]:
    """`openapi_extra` plus the `Idempotency-Key` header parameter, and the `Idempotent-Replayed`
    header of the success response (`status`). FastAPI merges this into the operation."""
    parameter = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": IDEMPOTENCY_DESCRIPTION,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }
    replayed = {
        "description": "`true` when this is the stored response of an earlier request with the same "
        "`Idempotency-Key` (absent otherwise).",
        "schema": {"type": "string", "enum": ["true"]},
    }
    return {
        **extra,
        "parameters": [*extra.get("parameters", []), parameter],
        "responses": {str(status): {"headers": {"Idempotent-Replayed": replayed}}},
    }


# OpenAPI links (3.1 §4.8.20): how a value in one response feeds a path parameter of another
# operation, e.g. `POST /posts` → `GET /posts/{post_id}`. FastAPI does not produce them; clients
# (and schemathesis's stateful tests) follow them to chain create → get → update → delete.
_POST = "/api/v1/posts/{post_id}"
_MEDIA = "/api/v1/media/{media_id}"
_ACCOUNT = "/api/v1/accounts/{account_id}"
_POST_TARGETS = {
    "GetPost": ("get", _POST),
    "UpdatePost": ("patch", _POST),
    "DeletePost": ("delete", _POST),
    "GetPostResults": ("get", _POST + "/results"),
    "RetryPost": ("post", _POST + "/retry"),
}
_MEDIA_TARGETS = {
    "GetMedia": ("get", _MEDIA),
    "DeleteMedia": ("delete", _MEDIA),
}
_ACCOUNT_TARGETS = {
    "GetAccount": ("get", _ACCOUNT),
    "GetAccountHealth": ("get", _ACCOUNT + "/health"),
}
# (method, path, status) of a response → (its value's JSON pointer, the operations it feeds).
LINKS: dict[tuple[str, str, str], tuple[str, dict[str, tuple[str, str]]]] = {
    ("post", "/api/v1/posts", "201"): ("/data/post_id", _POST_TARGETS),
    ("get", _POST, "200"): ("/data/post_id", _POST_TARGETS),
    ("patch", _POST, "200"): ("/data/post_id", _POST_TARGETS),
    ("delete", _POST, "200"): ("/data/post_id", {"GetPost": _POST_TARGETS["GetPost"]}),
    ("post", "/api/v1/media/upload", "201"): (
        "/data/media_id",
        {**_MEDIA_TARGETS, "CompleteUpload": ("post", _MEDIA + "/complete")},
    ),
    ("post", "/api/v1/media/{media_id}/complete", "200"): ("/data/media_id", _MEDIA_TARGETS),
    ("post", "/api/v1/media/upload-from-url", "200"): ("/data/media_id", _MEDIA_TARGETS),
    ("post", "/api/v1/ai/generate-image", "200"): ("/data/media_id", _MEDIA_TARGETS),
    ("get", _MEDIA, "200"): ("/data/media_id", _MEDIA_TARGETS),
    ("delete", _MEDIA, "200"): ("/data/media_id", {"GetMedia": _MEDIA_TARGETS["GetMedia"]}),
    ("get", "/api/v1/accounts", "200"): ("/data/account_ids/0", _ACCOUNT_TARGETS),
    ("get", _ACCOUNT, "200"): (
        "/data/account_id",
        {"GetAccountHealth": _ACCOUNT_TARGETS["GetAccountHealth"]},
    ),
}


def add_links(schema: dict[str, Any]) -> None:
    """Adds `LINKS` to a generated schema, naming each target by its `operationId`."""
    paths = schema.get("paths", {})
    for (method, path, status), (pointer, targets) in LINKS.items():
        response = paths[path][method]["responses"][status]
        links = response.setdefault("links", {})
        for name, (target_method, target_path) in targets.items():
            target = paths[target_path][target_method]
            parameter = target_path.rsplit("{", 1)[1].split("}", 1)[0]
            links[name] = {
                "operationId": target["operationId"],
                "parameters": {parameter: f"$response.body#{pointer}"},
                "description": f"`{parameter}` is `{pointer}` of this response.",
            }


def _header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_REQUEST_ID_HEADER = _header(
    "This request's id, as in `meta.request_id` and the logs.",
    {"type": "string", "pattern": "^req_[0-9a-f]{24}$"},
    required=True,
)
# API.md §3. Not on a 401 or 403, nor on a request refused before its rate limits were checked.
_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header(
        "The limit of the applicable window with the least room left.", {"type": "integer"}
    ),
    "X-RateLimit-Remaining": _header("Requests that window still admits.", {"type": "integer", "minimum": 0}),
    "X-RateLimit-Reset": _header(
        "Unix time (seconds) at which that window next frees a slot.", {"type": "integer"}
    ),
    "RateLimit-Policy": _header(
        "Every applicable window (IETF RateLimit headers draft).", {"type": "string"}
    ),
    "RateLimit": _header(
        "Each window's remaining requests and reset (IETF RateLimit headers draft).", {"type": "string"}
    ),
}
_RETRY_AFTER_HEADER = _header(
    "Whole seconds to wait before retrying.", {"type": "integer", "minimum": 1}, required=True
)


def add_response_headers(schema: dict[str, Any]) -> None:
    """Documents the headers every response carries (API.md §1.1, §3): `X-Request-Id` always, the
    rate-limit headers under `/api/v1`, and `Retry-After` on every 429 and 503."""
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                headers = response.setdefault("headers", {})
                headers["X-Request-Id"] = _REQUEST_ID_HEADER
                if path.startswith("/api/v1/"):
                    headers.update(_RATE_LIMIT_HEADERS)
                if status in ("429", "503"):
                    headers["Retry-After"] = _RETRY_AFTER_HEADER
