"""Create and look up organisations. Administered from the command line only (API.md §2)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.kit.ids import new_id
from postengine.models import Organization


class OrganizationNotFound(LookupError):
    pass


async def create_org(
    session: AsyncSession, *, name: str, plan: Plan, now: datetime, is_demo: bool = False
) -> Organization:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("an organization name must have 1 to 200 characters")
    org = Organization(
        id=new_id("org"),
        name=name,
        plan=str(plan),
        subscription_status="active" if plan is not Plan.NONE else "none",
        storage_used_bytes=0,
        is_demo=is_demo,
        created_at=now,
    )
    session.add(org)
    await session.flush()
    await session.run_sync(lambda sync: credits.open_account(sync.connection(), org.id, plan, now))
    return org


async def get_org(session: AsyncSession, org_ref: str) -> Organization:
    """By id, or by exact name when the name is unique (for the command line)."""
    org = await session.get(Organization, org_ref)
    if org is not None:
        return org
    found = list((await session.execute(select(Organization).where(Organization.name == org_ref))).scalars())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise OrganizationNotFound(f"{len(found)} organizations are named {org_ref!r}; use the org_… id")
    raise OrganizationNotFound(f"no organization {org_ref!r}")


async def list_orgs(session: AsyncSession) -> list[Organization]:
    return list((await session.execute(select(Organization).order_by(Organization.created_at))).scalars())


async def demo_org(session: AsyncSession) -> Organization | None:
    result = await session.execute(select(Organization).where(Organization.is_demo.is_(True)).limit(1))
    return result.scalar_one_or_none()
