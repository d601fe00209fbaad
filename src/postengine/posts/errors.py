"""Errors of the posts domain (API.md §7), rendered by the one handler in `app.py`."""

from typing import Any

from postengine.errors import ApiError, Conflict, NotFound

MEDIA_FIELD_MISSPELLINGS = ("media", "media_id", "mediaId", "attachments", "url")


class InvalidFieldName(ApiError):
    """A known misspelling sent instead of the real field (API.md §1.4)."""

    status, code = 400, "invalid_field_name"

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(
            f"Unknown field {field!r}: did you mean {expected}? Send media as a list of ids, "
            f'e.g. "{expected}": ["med_…"].',
            details={"field": field, "expected": expected},
        )


class PostNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such post in your organization.")


class AccountsNotFound(NotFound):
    def __init__(self, account_ids: list[int]) -> None:
        listed = ", ".join(str(i) for i in account_ids)
        super().__init__(
            f"No such account in your organization: {listed}. List your accounts with GET /accounts.",
            details={"account_ids": account_ids},
        )


class MediaNotFound(NotFound):
    def __init__(self, media_ids: list[str]) -> None:
        super().__init__(
            f"No such media in your organization: {', '.join(media_ids)}.",
            details={"media_ids": media_ids},
        )


class MediaNotReady(ApiError):
    status, code = 400, "media_not_ready"

    def __init__(self, media: list[tuple[str, str]]) -> None:
        listed = ", ".join(f"{media_id} ({status})" for media_id, status in media)
        super().__init__(
            f"Media is not ready to be posted: {listed}. Finish the upload with POST /media/{{id}}/complete first.",
            details={"media_ids": [media_id for media_id, _ in media]},
        )


class PostValidationFailed(ApiError):
    """Per-platform rules, all reported at once (API.md §7.1)."""

    status, code = 400, "post_validation_failed"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0]["message"]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}", details={"validation_errors": errors})


class PostAlreadyPublished(Conflict):
    code = "post_already_published"

    def __init__(self, status: str) -> None:
        super().__init__(
            f"This post is {status}: publishing has started, so it can no longer be changed or deleted. "
            "Failed destinations can be retried with POST /posts/{id}/retry.",
            details={"post_status": status},
        )
