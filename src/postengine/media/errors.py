"""The media library's errors (API.md §5), on top of the API's hierarchy in `postengine.errors`."""

from postengine.errors import ApiError, Conflict, PayloadTooLarge


class InvalidSignature(ApiError):
    status, code = 403, "invalid_signature"

    def __init__(self) -> None:
        super().__init__(
            "This upload URL is not valid (its signature does not match). Use the upload_url exactly as "
            "POST /api/v1/media/upload returned it."
        )


class UploadExpired(ApiError):
    status, code = 403, "upload_expired"

    def __init__(self) -> None:
        super().__init__("This upload URL has expired. Start a new upload with POST /api/v1/media/upload.")


class UploadSizeMismatch(ApiError):
    status, code = 400, "upload_size_mismatch"

    def __init__(self, *, declared: int, received: int | None) -> None:
        got = "more bytes than that" if received is None else f"{received} bytes"
        super().__init__(
            f"The upload was declared as {declared} bytes but the body has {got}. Send exactly the "
            "declared number of bytes, or start a new upload with the right size.",
            details={"declared_size": declared, "received_size": received},
        )


class InvalidMedia(ApiError):
    status, code = 400, "invalid_media"


class UrlNotAllowed(ApiError):
    status, code = 400, "url_not_allowed"


class FetchFailed(ApiError):
    status, code = 400, "fetch_failed"


class UploadIncomplete(Conflict):
    code = "upload_incomplete"


class UploadClosed(Conflict):
    code = "upload_not_open"


class UploadFailed(Conflict):
    code = "upload_failed"


class MediaInUse(Conflict):
    code = "media_in_use"

    def __init__(self, post_ids: list[str]) -> None:
        super().__init__(
            "This media item is used by a scheduled or publishing post. Remove it from the post, wait "
            "until the post is published, or delete it anyway with ?force=true.",
            details={"post_ids": post_ids},
        )


class StorageLimitExceeded(PayloadTooLarge):
    code = "storage_limit_exceeded"

    def __init__(self, *, used: int, limit: int, size: int) -> None:
        super().__init__(
            f"This file would take your organization's media storage over its plan's limit "
            f"({used:,} of {limit:,} bytes used, this file is {size:,} bytes). Delete media you no longer "
            "need or upgrade your plan.",
            details={"storage_used_bytes": used, "storage_limit_bytes": limit, "size": size},
        )
