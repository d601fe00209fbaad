from postengine.errors import ApiError


class IdempotencyKeyMismatch(ApiError):
    status, code = 422, "idempotency_key_mismatch"

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"This Idempotency-Key was already used for a different request ({endpoint} with another "
            "body). Use a new key for a new request.",
            details={"endpoint": endpoint},
        )


class IdempotencyInProgress(ApiError):
    status, code = 409, "idempotency_in_progress"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed. Retry after "
            f"{retry_after} seconds to receive its response.",
            fields={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class ClaimLost(Exception):
    """The key's lease ran out and another request took it over: this attempt must not record (its
    transaction rolls back)."""
