"""Connecting accounts: platforms, names, the plan's limit (also under concurrency), lookups for posts."""

import asyncio

import pytest

from postengine.accounts import service
from postengine.accounts.errors import (
    AccountLimitReached,
    AccountNotFound,
    DuplicateAccount,
    InvalidAccountName,
    UnknownPlatform,
)
from postengine.credits.plans import Plan
from postengine.orgs.service import OrganizationNotFound
from tests.accounts.helpers import connect


async def test_connect_normalises_and_defaults(db, make_tenant, clock) -> None:
    tenant = await make_tenant()
    account = await connect(db, tenant.org_id, clock, platform=" LinkedIn ", name="  Acme Inc  ")
    assert (account.platform, account.account_name, account.display_name) == ("linkedin", "Acme Inc", "Acme Inc")
    assert account.is_active and account.is_sandbox and account.org_id == tenant.org_id
    assert account.created_at.timestamp() == pytest.approx(clock.time(), abs=0.001)
    named = await connect(db, tenant.org_id, clock, name="@acme", display_name="Acme")
    assert named.display_name == "Acme" and named.id > account.id


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"platform": "myspace"}, UnknownPlatform, "unknown platform 'myspace'; use one of: instagram"),
        ({"name": "   "}, InvalidAccountName, "1 to 200 characters"),
        ({"name": "a" * 201}, InvalidAccountName, "1 to 200 characters"),
        ({"name": "bad\x00name"}, InvalidAccountName, "no control characters"),
        ({"display_name": ""}, InvalidAccountName, "display name"),
    ],
)
async def test_connect_refuses_bad_input(db, make_tenant, clock, fields, error, message) -> None:
    tenant = await make_tenant()
    with pytest.raises(error, match=message):
        await connect(db, tenant.org_id, clock, **fields)
    assert await service.list_for_admin(db, tenant.org_id) == []


async def test_unknown_org_is_refused(db, clock) -> None:
    with pytest.raises(OrganizationNotFound, match="no organization 'org_nope'"):
        await connect(db, "org_nope", clock)


async def test_names_are_unique_per_platform_ignoring_case(db, make_tenant, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    first = await connect(db, tenant.org_id, clock, name="@acme")
    with pytest.raises(DuplicateAccount, match=f"already has the x account '@acme': account {first.id}"):
        await connect(db, tenant.org_id, clock, name="@ACME")
    await connect(db, tenant.org_id, clock, platform="threads", name="@acme")  # another platform
    await connect(db, other.org_id, clock, name="@acme")  # another organisation
    await service.set_account_active(db, first.id, False)
    with pytest.raises(DuplicateAccount, match="disabled; enable it"):
        await connect(db, tenant.org_id, clock, name="@acme")


async def test_plan_limit_counts_active_accounts(db, make_tenant, clock) -> None:
    tenant = await make_tenant(plan=Plan.TRIAL)  # 5 accounts
    accounts = [await connect(db, tenant.org_id, clock, name=f"@a{i}") for i in range(5)]
    with pytest.raises(AccountLimitReached, match="the trial plan includes 5 active accounts"):
        await connect(db, tenant.org_id, clock, name="@sixth")

    disabled = await service.set_account_active(db, accounts[0].id, False)
    assert not disabled.is_active
    assert (await service.set_account_active(db, accounts[0].id, False)) == disabled  # twice is harmless
    sixth = await connect(db, tenant.org_id, clock, name="@sixth")
    with pytest.raises(AccountLimitReached):
        await service.set_account_active(db, accounts[0].id, True)
    await service.set_account_active(db, sixth.id, False)
    assert (await service.set_account_active(db, accounts[0].id, True)).is_active


async def test_no_plan_connects_nothing(db, make_tenant, clock) -> None:
    tenant = await make_tenant(plan=Plan.NONE)
    with pytest.raises(AccountLimitReached, match="the none plan includes 0 active accounts"):
        await connect(db, tenant.org_id, clock)


async def test_concurrent_connects_never_exceed_the_limit(db, make_tenant, clock) -> None:
    tenant = await make_tenant(plan=Plan.TRIAL)
    results = await asyncio.gather(
        *(connect(db, tenant.org_id, clock, name=f"@c{i}") for i in range(9)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(results) - len(refused) == 5
    assert all(isinstance(r, AccountLimitReached) for r in refused)
    assert len(await service.list_for_admin(db, tenant.org_id)) == 5


async def test_concurrent_connects_of_one_name_make_one_account(db, make_tenant, clock) -> None:
    tenant = await make_tenant()
    results = await asyncio.gather(*(connect(db, tenant.org_id, clock) for _ in range(4)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, DuplicateAccount) for r in results if isinstance(r, BaseException))


async def test_set_active_on_unknown_account(db) -> None:
    with pytest.raises(AccountNotFound, match="no account 2147483000"):
        await service.set_account_active(db, 2_147_483_000, False)


async def test_accounts_for_post_are_scoped_to_the_org(db, make_tenant, clock) -> None:
    tenant, other = await make_tenant(), await make_tenant(name="Other")
    mine = await connect(db, tenant.org_id, clock, name="@mine")
    disabled = await connect(db, tenant.org_id, clock, platform="instagram", name="mine", sandbox=False)
    await service.set_account_active(db, disabled.id, False)
    theirs = await connect(db, other.org_id, clock, name="@theirs")

    found = await service.get_accounts_for_post(
        db, tenant.org_id, [mine.id, disabled.id, theirs.id, mine.id, 0, -3, 2**40, 2_000_000_000]
    )
    assert set(found) == {mine.id, disabled.id}
    assert (found[mine.id].platform, found[mine.id].is_active, found[mine.id].is_sandbox) == ("x", True, True)
    assert (found[disabled.id].platform, found[disabled.id].is_active, found[disabled.id].is_sandbox) == (
        "instagram",
        False,
        False,
    )
    assert await service.get_accounts_for_post(db, tenant.org_id, []) == {}
