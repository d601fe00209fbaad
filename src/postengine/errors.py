"""The one error hierarchy of the HTTP API (API.md §1.4).

Every error a client can cause is an `ApiError` subclass that knows its HTTP status, its `code` and
any fields it carries for the client. One handler in `app.py` renders them all into the envelope.
Domain code raises these (or domain errors that subclass them); nothing outside the HTTP layer
raises `HTTPException`.
"""

from typing import Any, ClassVar

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # `fields` appear both on `error` itself and inside `error.details` (API.md §1.1).
        self.fields = fields or {}
        self.details = {**self.fields, **(details or {})}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.status in RETRYABLE_STATUSES,
            **self.fields,
            "details": self.details,
        }


class InvalidJson(ApiError):
    status, code = 400, "invalid_json"


class ValidationFailed(ApiError):
    status, code = 400, "validation_error"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        first = errors[0]["message"] if errors else "The request is not valid."
        message = first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more problems)"
        super().__init__(message, details={"errors": errors})


class PromptBlocked(ApiError):
    status, code = 400, "prompt_blocked"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class InsufficientScope(ApiError):
    status, code = 403, "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This API key is missing the {scope} scope. Create a key with the {scope} scope enabled.",
            details={"required_scope": scope},
        )


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status, code = 409, "conflict"


class RequestTimeout(ApiError):
    """The request body stopped arriving (a slow or stalled client): the connection is closed."""

    status, code = 408, "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class RateLimitExceeded(ApiError):
    status, code = 429, "rate_limit_exceeded"


class InsufficientCredits(ApiError):
    status, code = 402, "insufficient_credits"

    def __init__(self, *, required: int, remaining: int) -> None:
        super().__init__(
            f"You need {required} AI credits for this generation but only have {remaining} remaining.",
            fields={"credits_remaining": remaining, "credits_required": required},
        )


class InternalError(ApiError):
    status, code = 500, "internal_error"


class GenerationFailed(ApiError):
    status, code = 500, "generation_failed"


class ProviderUnavailable(ApiError):
    status, code = 503, "provider_unavailable"


class ServiceUnavailable(ApiError):
    """The database cannot take the request now (no free connection, or the server refuses more):
    nothing was done, the client may retry."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
