"""`/accounts` (API.md §6): the caller's connected social accounts and their health. Read scope.

Account ids are positive integers; a path id that is not one of the caller's accounts, whatever
its form (`abc`, `0`, another organisation's id), is a 404 `not_found`.
"""

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.requests import Request

from postengine.accounts import service
from postengine.accounts.schemas import AccountHealthOut, AccountList, AccountOut
from postengine.auth.dependencies import ReadCaller
from postengine.context import get_ctx
from postengine.envelope import EnvelopeResponse, ok
from postengine.kit.clock import to_datetime
from postengine.openapi import envelope_of, error_responses

router = APIRouter(tags=["Accounts"])

AccountId = Annotated[str, Path(description="The account's id, a positive integer.", examples=["2280"])]


@router.get(
    "/accounts",
    summary="List connected social accounts",
    description="Every account connected to your organization, in the order they were connected "
    "(no pagination), with its health. Requires the `read` scope.",
    response_model=envelope_of(AccountList),
    responses=error_responses(401, 403, 429),
)
async def list_accounts(request: Request, caller: ReadCaller) -> EnvelopeResponse:
    ctx = get_ctx(request)
    data = await service.list_accounts(ctx.db, caller.org_id, to_datetime(ctx.clock.time()))
    return ok(request, data)


@router.get(
    "/accounts/{account_id}",
    summary="Get one connected account",
    response_model=envelope_of(AccountOut),
    responses=error_responses(401, 403, 404, 429),
)
async def get_account(request: Request, caller: ReadCaller, account_id: AccountId) -> EnvelopeResponse:
    ctx = get_ctx(request)
    data = await service.get_account(
        ctx.db, caller.org_id, service.parse_account_id(account_id), to_datetime(ctx.clock.time())
    )
    return ok(request, data)


@router.get(
    "/accounts/{account_id}/health",
    summary="Check whether an account can post",
    description="The account's connection state, whether it needs reconnecting, and its destinations "
    "that failed in the last 24 hours.",
    response_model=envelope_of(AccountHealthOut),
    responses=error_responses(401, 403, 404, 429),
)
async def account_health(request: Request, caller: ReadCaller, account_id: AccountId) -> EnvelopeResponse:
    ctx = get_ctx(request)
    data = await service.account_health(
        ctx.db, caller.org_id, service.parse_account_id(account_id), to_datetime(ctx.clock.time())
    )
    return ok(request, data)
