"""Platforms, health states and the documented shapes of the accounts API (API.md §6).

Responses are built as plain dicts by `service` (the hot path does not validate its own output);
these models document them in OpenAPI.
"""

from enum import StrEnum

from pydantic import BaseModel, Field


class Platform(StrEnum):
    INSTAGRAM = "instagram"
    FACEBOOK = "facebook"
    X = "x"
    LINKEDIN = "linkedin"
    YOUTUBE = "youtube"
    TIKTOK = "tiktok"
    THREADS = "threads"


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    EXPIRED = "expired"
    UNHEALTHY = "unhealthy"


class AccountHealthSummary(BaseModel):
    status: HealthStatus
    can_post: bool
    message: str | None = Field(
        description="Why the account cannot post, or what to do about it; null when all is well."
    )


class AccountOut(BaseModel):
    id: int = Field(examples=[2280])
    account_id: int = Field(examples=[2280], description="The same value as `id`.")
    platform: Platform
    account_name: str = Field(examples=["@acme"])
    display_name: str = Field(examples=["Acme Inc"])
    avatar_url: str | None
    is_active: bool
    created_at: str
    health: AccountHealthSummary


class AccountList(BaseModel):
    accounts: list[AccountOut]
    account_ids: list[int]
    total: int


class AccountHealthOut(BaseModel):
    account_id: int
    platform: Platform
    status: HealthStatus
    can_post: bool
    needs_reconnection: bool
    token_expires_at: str | None
    recent_failures: int = Field(description="Destinations of this account that failed in the last 24 hours.")
    last_published_at: str | None
    message: str | None = Field(
        description="Why the account cannot post, or what to do about it; null when all is well."
    )
