"""Plans and what they include. Monthly AI credits are from the seed; the account and storage
limits are ours (the seed names none), chosen so the spec's GET /me example holds for `growth`."""

from dataclasses import dataclass
from enum import StrEnum

GIB = 1024**3


class Plan(StrEnum):
    TRIAL = "trial"
    STARTER = "starter"
    GROWTH = "growth"
    PRO = "pro"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class PlanLimits:
    monthly_credits: int
    accounts: int
    storage_bytes: int


PLANS: dict[Plan, PlanLimits] = {
    Plan.TRIAL: PlanLimits(50, 5, 1 * GIB),
    Plan.STARTER: PlanLimits(50, 10, 5 * GIB),
    Plan.GROWTH: PlanLimits(500, 25, 10 * GIB),
    Plan.PRO: PlanLimits(2_000, 100, 50 * GIB),
    Plan.NONE: PlanLimits(0, 0, 0),
}
