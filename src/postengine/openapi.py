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
    can find the database without a free connection (`service_unavailable`)."""
    return {
        status: {"model": ErrorEnvelope, "description": ERROR_DESCRIPTIONS[status]}
        for status in sorted({*statuses, 503})
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


def idempotent(extra: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` plus the `Idempotency-Key` header parameter."""
    parameter = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": IDEMPOTENCY_DESCRIPTION,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }
    return {**extra, "parameters": [*extra.get("parameters", []), parameter]}
