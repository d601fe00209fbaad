"""Whether an account can take posts now, and why not (API.md §6).

Health is derived when it is read, from the account's row and the time, so an expiring token shows
as `expired` the moment it expires without any job having to notice:

1. a token that has expired → `expired`, `needs_reconnection`;
2. a state a connector recorded (`health_status` `expired`/`unhealthy`, e.g. the platform revoked
   our access) → that state, with its message;
3. no connector can publish for the account (a non-sandbox account before its platform's
   connector exists) → `unhealthy`;
4. otherwise `healthy`.
Independently, a disabled account (`is_active` false) cannot post, whatever its health.
"""

from dataclasses import dataclass
from datetime import datetime

from postengine.accounts.connectors.registry import PLATFORMS_WITH_CONNECTOR, unavailable_message
from postengine.accounts.repository import AccountRow
from postengine.accounts.schemas import HealthStatus
from postengine.kit.clock import iso


@dataclass(frozen=True, slots=True)
class AccountHealth:
    status: HealthStatus
    can_post: bool
    needs_reconnection: bool
    message: str | None

    def summary(self) -> dict[str, object]:
        return {"status": self.status.value, "can_post": self.can_post, "message": self.message}


def assess(account: AccountRow, now: datetime) -> AccountHealth:
    status, message = _connection(account, now)
    needs_reconnection = status is HealthStatus.EXPIRED
    can_post = status is HealthStatus.HEALTHY and account.is_active
    if not account.is_active:
        disabled = "This account is disabled; posts cannot target it."
        message = disabled if message is None else f"{disabled} {message}"
    return AccountHealth(status, can_post, needs_reconnection, message)


def _connection(account: AccountRow, now: datetime) -> tuple[HealthStatus, str | None]:
    expires = account.token_expires_at
    if expires is not None and expires <= now:
        return (
            HealthStatus.EXPIRED,
            f"The access token expired at {iso(expires)}; reconnect the account to keep posting.",
        )
    if account.health_status == HealthStatus.EXPIRED:
        return (
            HealthStatus.EXPIRED,
            account.health_message or "The connection expired; reconnect the account.",
        )
    if account.health_status == HealthStatus.UNHEALTHY:
        return HealthStatus.UNHEALTHY, account.health_message or "The platform refused our last requests."
    if not account.is_sandbox and account.platform not in PLATFORMS_WITH_CONNECTOR:
        return HealthStatus.UNHEALTHY, unavailable_message(account.platform)
    return HealthStatus.HEALTHY, None
