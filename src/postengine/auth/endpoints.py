"""`GET /me`: introspection of the calling key (API.md §2.1)."""

import math
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from postengine.auth.authenticator import INVALID_KEY
from postengine.auth.dependencies import AnyCaller
from postengine.auth.scopes import format_scopes
from postengine.context import get_ctx
from postengine.credits import service as credits
from postengine.credits.plans import PLANS, Plan
from postengine.envelope import EnvelopeResponse, ok
from postengine.errors import Unauthorized
from postengine.kit.clock import iso, to_datetime
from postengine.openapi import envelope_of, error_responses
from postengine.ratelimit.rules import RateLimitScope, windows_for

router = APIRouter(tags=["Authentication"])
ALL_WINDOWS = windows_for(RateLimitScope.API, RateLimitScope.POSTS, RateLimitScope.AI)


class MeResponse(BaseModel):
    api_key: dict[str, Any]
    scopes: list[str]
    organization: dict[str, Any]
    quota: dict[str, Any]
    rate_limits: list[dict[str, Any]]


@router.get(
    "/me",
    summary="Introspect the calling API key",
    response_model=envelope_of(MeResponse),
    responses=error_responses(401, 429),
)
async def me(request: Request, caller: AnyCaller) -> EnvelopeResponse:
    ctx = get_ctx(request)
    now = to_datetime(ctx.clock.time())
    org = await ctx.orgs.get(caller.org_id)
    if org is None:
        raise Unauthorized(INVALID_KEY)
    plan = Plan(org.plan)
    limits = PLANS[plan]
    balance = credits.project(org.account, plan, now)
    states = [
        {
            "scope": state.window.scope.value,
            "limit": state.window.limit,
            "window_seconds": state.window.seconds,
            "remaining": state.remaining,
            "reset": math.ceil(state.reset_at),
        }
        for state in await ctx.rate_limits.peek(caller.key_id, ALL_WINDOWS)
    ]
    scopes = format_scopes(caller.scopes).split(",")
    data = {
        "api_key": {
            "id": caller.key_id,
            "key_prefix": caller.key_prefix,
            "name": caller.key_name,
            "scopes": scopes,
            "last_used_at": iso(now),
            "created_at": iso(caller.created_at),
            "expires_at": iso(caller.expires_at),
        },
        "scopes": scopes,
        "organization": {
            "id": org.org_id,
            "name": org.name,
            "subscription_plan": org.plan,
            "subscription_status": org.subscription_status,
            "current_period_start": iso(balance.period_start),
            "current_period_end": iso(balance.period_end),
            "entitled": plan is not Plan.NONE,
        },
        "quota": {
            "ai_credits": {
                "used": balance.allowance_used,
                "limit": balance.allowance,
                "bonus": balance.bonus,
                "remaining": balance.remaining,
            },
            "accounts": {
                "used": org.active_accounts,
                "limit": limits.accounts,
            },
            "storage_bytes": {"used": org.storage_used_bytes, "limit": limits.storage_bytes},
        },
        "rate_limits": states,
    }
    return ok(request, data)
