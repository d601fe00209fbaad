"""The authenticated-caller dependency: key → scope → rate limits, in the order of API.md §4.3.

Rejections at the first two steps (401, 403) use no rate-limit slot. Once admitted, the
rate-limit headers are attached to every response of the request, errors included.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from postengine.auth.authenticator import Caller
from postengine.auth.scopes import Scope
from postengine.context import get_ctx
from postengine.errors import InsufficientScope
from postengine.ops import metrics
from postengine.ratelimit.headers import rate_limit_error, rate_limit_headers
from postengine.ratelimit.rules import RateLimitScope, windows_for


def access(scope: Scope | None, *limits: RateLimitScope) -> Callable[[Request], Awaitable[Caller]]:
    windows = windows_for(RateLimitScope.API, *limits)

    async def dependency(request: Request) -> Caller:
        ctx = get_ctx(request)
        caller = await ctx.authenticator.authenticate(request.headers.get("authorization"))
        if scope is not None and scope not in caller.scopes:
            raise InsufficientScope(scope)
        admission = await ctx.rate_limits.admit(caller.key_id, windows)
        if not admission.admitted:
            error = rate_limit_error(admission)
            metrics.rate_limited(error.details["scope"])
            raise error
        request.state.response_headers = rate_limit_headers(admission)
        request.state.caller = caller
        return caller

    return dependency


AnyCaller = Annotated[Caller, Depends(access(None))]
ReadCaller = Annotated[Caller, Depends(access(Scope.READ))]
WriteCaller = Annotated[Caller, Depends(access(Scope.WRITE))]
AiCaller = Annotated[Caller, Depends(access(Scope.AI, RateLimitScope.AI))]
