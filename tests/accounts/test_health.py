"""Account health (API.md §6), derived from the row and the time."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from postengine.accounts.health import assess
from postengine.accounts.repository import AccountRow
from postengine.accounts.schemas import HealthStatus

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SANDBOX = AccountRow(
    id=7,
    org_id="org_" + "0" * 24,
    platform="x",
    account_name="@acme",
    display_name="Acme",
    avatar_url=None,
    is_active=True,
    is_sandbox=True,
    health_status="healthy",
    health_message=None,
    token_expires_at=None,
    last_published_at=None,
    created_at=NOW - timedelta(days=3),
)


def test_active_sandbox_is_healthy() -> None:
    health = assess(SANDBOX, NOW)
    assert (health.status, health.can_post, health.needs_reconnection, health.message) == (
        HealthStatus.HEALTHY,
        True,
        False,
        None,
    )
    assert assess(replace(SANDBOX, token_expires_at=NOW + timedelta(seconds=1)), NOW).can_post


def test_disabled_account_cannot_post() -> None:
    health = assess(replace(SANDBOX, is_active=False), NOW)
    assert health.status is HealthStatus.HEALTHY and not health.can_post and not health.needs_reconnection
    assert health.message == "This account is disabled; posts cannot target it."


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=-1)])
def test_expired_token_needs_reconnection(offset: timedelta) -> None:
    health = assess(replace(SANDBOX, token_expires_at=NOW + offset), NOW)
    assert (health.status, health.can_post, health.needs_reconnection) == (HealthStatus.EXPIRED, False, True)
    assert health.message is not None and "reconnect" in health.message
    assert health.summary() == {"status": "expired", "can_post": False, "message": health.message}


def test_state_recorded_by_a_connector_is_reported() -> None:
    health = assess(replace(SANDBOX, health_status="unhealthy", health_message="The page was deleted."), NOW)
    assert (health.status, health.can_post, health.message) == (
        HealthStatus.UNHEALTHY,
        False,
        "The page was deleted.",
    )
    expired = assess(replace(SANDBOX, health_status="expired"), NOW)
    assert expired.status is HealthStatus.EXPIRED and expired.needs_reconnection


def test_platform_without_connector_cannot_post() -> None:
    health = assess(replace(SANDBOX, is_sandbox=False, platform="tiktok"), NOW)
    assert (health.status, health.can_post, health.needs_reconnection) == (HealthStatus.UNHEALTHY, False, False)
    assert health.message is not None and health.message.startswith("Publishing to tiktok is not available")
