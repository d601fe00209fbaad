"""A `postengine serve` process SIGKILLed at any point of a generation: after a restart, every
generation is either completed (one media item, its bytes in storage, no refund) or failed with
exactly one refund that restores the credits to the bucket they came from; never both, never
neither. On SQLite (a file) and on PostgreSQL (a fresh database).

How a real process is stopped at a chosen point without test hooks in production code: each victim
server starts with `tests/crash/faultinject` on its PYTHONPATH, so Python imports its
`sitecustomize.py` at start-up. With `PE_TEST_FAULT_POINT` set, that module wraps `Database.run`,
`LocalStorage.put` and `generation.service._generate_image` from the outside; at the named point,
inside a generation request, it writes a marker file and blocks the thread it is on with
`time.sleep`. On the event loop's thread that freezes the whole process, so neither the generation's
deadline nor the process's own sweeper can settle anything before the kill. The test waits for the
marker, then SIGKILLs the process group: a real, unannounced death, with whatever the process had
written (database, files) left as it was. The provider-call point needs no hook: the fake fal.ai
(a loopback HTTP server) writes the marker when the `[hang]` request arrives and never answers.

Points, one victim process each, one organisation each (`harness.FaultPoint`):
  reserved              reservation committed, provider not called      → refunded by a sweep
  provider              the provider holds the request                   → refunded by a sweep
  stored                image + thumbnail in storage, nothing recorded   → refunded by a sweep
  complete_uncommitted  completing transaction open (rolled back)       → refunded by a sweep
  refund_uncommitted    failing provider, refund transaction open        → refunded by a sweep
  complete_committed    completing transaction committed, no response    → completed, no refund
  refund_committed      refund committed, no response                    → failed, one refund

Recovery: the test waits until the last reservation's deadline plus the sweeper's grace (a quarter of
the deadline) has passed on the wall clock, then starts a fresh server without faults. uvicorn answers
only after the lifespan, whose start-up sweep (`sweep_expired`) has run by then, so the checks run as
soon as it answers, without polling: nothing may be left `reserved`. (Victims started after an earlier
kill may already have swept that one at their own start-up; either way it is a fresh process's sweep,
and the generation's error says so.)

Orphan bytes: a process killed after writing the image but before the completing transaction commits
(`stored`, `complete_uncommitted`) leaves the original and its thumbnail in storage with no media row.
The sweeper that refunds the generation deletes them (a generation's media id, and so its storage
keys, follow from the generation id): after recovery no file is left that no media item points at.
"""

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from postengine.models import Generation
from tests.crash.harness import (
    FaultPoint,
    KillableFal,
    Probe,
    Request,
    Servers,
    Tenant,
    fake_fal,
    recovery_time,
    seed,
    stored_files,
)
from tests.scaleout.cluster import FakeFal

# Points that leave the generation `reserved` first, so that the wait for the last deadline overlaps
# the last victims' runs.
POINTS = [
    FaultPoint.RESERVED,
    FaultPoint.PROVIDER,
    FaultPoint.STORED,
    FaultPoint.COMPLETE_UNCOMMITTED,
    FaultPoint.REFUND_UNCOMMITTED,
    FaultPoint.COMPLETE_COMMITTED,
    FaultPoint.REFUND_COMMITTED,
]
SETTLED_AT_KILL = {FaultPoint.COMPLETE_COMMITTED: "completed", FaultPoint.REFUND_COMMITTED: "failed"}
SWEEPER_ERROR = "deadline passed (sweeper)"


def kill_at(point: FaultPoint, tenant: Tenant, servers: Servers, tmp_path: Path) -> dict[str, Any]:
    """Start a victim server armed at `point`, send it a generation, SIGKILL it once it is there.
    Returns the marker (what the process was doing: ids and storage keys)."""
    marker = tmp_path / f"{point.value}.marker"
    KillableFal.marker = marker if point is FaultPoint.PROVIDER else None
    server = servers.start(point, marker)
    request = Request(server.base, tenant.key, point.prompt, idempotency_key(point))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert server.proc.poll() is None, f"the server died before reaching {point}:\n{server.log_tail()}"
        if request.done:
            answer = request.response.text if request.response is not None else repr(request.error)
            pytest.fail(f"the generation ended before reaching {point}: {answer}\n{server.log_tail()}")
        assert time.monotonic() < deadline, f"the server never reached {point}:\n{server.log_tail()}"
        time.sleep(0.005)
    servers.kill(server)
    request.thread.join(30)
    assert request.response is None, f"{point}: the server answered before it died: {request.response.text}"
    content: dict[str, Any] = json.loads(marker.read_text())
    assert content["point"] == point.value
    return content


def idempotency_key(point: FaultPoint) -> str:
    return f"crash-{point.value}"


def files_of(marker: dict[str, Any]) -> set[str]:
    """The storage keys a victim had written when it died (from its marker)."""
    if "thumb_key" in marker:
        return {marker["key"], marker["thumb_key"]}
    if marker["point"] == FaultPoint.STORED.value:  # the thumbnail's key; the original is its sibling
        return {marker["key"], marker["key"].rsplit("/", 1)[0] + "/original.webp"}
    return set()


RETRIED = (FaultPoint.RESERVED, FaultPoint.STORED, FaultPoint.COMPLETE_UNCOMMITTED, FaultPoint.COMPLETE_COMMITTED)


def retry_after_crash(point: FaultPoint, tenant: Tenant, base: str, probe: Probe) -> None:
    first = probe.generation(tenant.org_id)
    retry = httpx.post(
        f"{base}/api/v1/ai/generate-image",
        headers={"Authorization": f"Bearer {tenant.key}", "Idempotency-Key": idempotency_key(point)},
        json={"prompt": point.prompt, "model": "flux-schnell"},
        timeout=60,
    )
    assert retry.status_code == 200, (point, retry.text)
    replayed = retry.headers.get("idempotent-replayed") == "true"
    if point is FaultPoint.COMPLETE_COMMITTED:
        assert replayed, point
        assert retry.json()["data"]["media_id"] == first.media_id
        assert probe.generation(tenant.org_id).id == first.id  # still exactly one generation
        return
    assert not replayed, point
    statuses = sorted(row.status for row in probe.rows(select(Generation.status).where(Generation.org_id == tenant.org_id)))
    assert statuses == ["completed", "failed"], (point, statuses)
    ledger = probe.ledger(tenant.org_id)
    allowance, used, bonus = probe.account(tenant.org_id)
    assert sum(row.amount for row in ledger) == allowance - used + bonus, point
    assert -sum(row.amount for row in ledger if row.kind in ("generation", "refund")) == first.credits, point


def check_at_kill(
    point: FaultPoint, tenant: Tenant, marker: dict[str, Any], probe: Probe, media_root: Path
) -> None:
    """The process died where it was meant to: the database shows exactly what had committed."""
    gen = probe.generation(tenant.org_id)
    assert gen.status == SETTLED_AT_KILL.get(point, "reserved"), (point, gen.status, gen.error)
    kinds = sorted(row.kind for row in probe.ledger(tenant.org_id) if row.generation_id == gen.id)
    assert kinds == (["generation", "refund"] if point is FaultPoint.REFUND_COMMITTED else ["generation"]), (
        point
    )
    media = probe.media(tenant.org_id)
    assert len(media) == (1 if point is FaultPoint.COMPLETE_COMMITTED else 0), point
    written = files_of(marker)
    if point in (FaultPoint.STORED, FaultPoint.COMPLETE_UNCOMMITTED, FaultPoint.COMPLETE_COMMITTED):
        assert len(written) == 2 and written <= stored_files(media_root), (point, written)
    if point is FaultPoint.COMPLETE_UNCOMMITTED:
        assert gen.media_id is None  # the open transaction's UPDATE and INSERTs were rolled back
        assert probe.storage_used(tenant.org_id) == 0
    if point is FaultPoint.PROVIDER:
        assert FakeFal.calls.count(point.prompt) == 1  # the provider did receive it


def check_settled(
    point: FaultPoint, tenant: Tenant, before: tuple[int, int, int], probe: Probe, media_root: Path
) -> None:
    """Completed with its media and bytes and no refund, or failed with one exact refund."""
    gen = probe.generation(tenant.org_id)
    ledger = probe.ledger(tenant.org_id)
    reservations = [row for row in ledger if row.generation_id == gen.id and row.kind == "generation"]
    refunds = [row for row in ledger if row.generation_id == gen.id and row.kind == "refund"]
    assert len(reservations) == 1 and reservations[0].amount == -gen.credits, (point, reservations)
    assert (-reservations[0].allowance_delta, -reservations[0].bonus_delta) == (
        gen.allowance_part,
        gen.bonus_part,
    )
    media = probe.media(tenant.org_id)
    allowance, used, bonus = probe.account(tenant.org_id)
    assert sum(row.amount for row in ledger) == allowance - used + bonus, point  # sum(ledger) == balance

    if point is FaultPoint.COMPLETE_COMMITTED:
        assert gen.status == "completed", (point, gen.status, gen.error)
        assert refunds == [], point  # never both
        assert len(media) == 1 and media[0].id == gen.media_id and media[0].source == "ai", (point, media)
        item = media[0]
        original = (media_root / item.storage_key).read_bytes()
        assert len(original) == item.size and hashlib.sha256(original).hexdigest() == item.sha256
        assert item.thumbnail_key and (media_root / item.thumbnail_key).stat().st_size > 0
        assert (allowance, used, bonus) == (
            before[0],
            before[1] + gen.allowance_part,
            before[2] - gen.bonus_part,
        )
        assert probe.storage_used(tenant.org_id) == item.size
        return

    assert gen.status == "failed", (point, gen.status)
    assert len(refunds) == 1, (point, refunds)  # never neither, never twice
    assert (refunds[0].allowance_delta, refunds[0].bonus_delta) == (gen.allowance_part, gen.bonus_part), point
    assert (allowance, used, bonus) == before, point  # back to the credits it had before, bucket by bucket
    assert media == [] and gen.media_id is None, point
    assert probe.storage_used(tenant.org_id) == 0
    if point is FaultPoint.REFUND_COMMITTED:
        assert gen.error != SWEEPER_ERROR  # refunded by the request itself, before it died
    else:
        assert gen.error == SWEEPER_ERROR, (point, gen.error)  # by a fresh process's sweep


def test_sigkill_at_any_point_of_a_generation_ends_completed_or_refunded_exactly_once(
    tmp_path: Path, process_database_url: str
) -> None:
    tenants = asyncio.run(seed(process_database_url, len(POINTS)))
    probe = Probe(process_database_url)
    with fake_fal() as fal_url:
        servers = Servers(tmp_path, process_database_url, fal_url)
        try:
            before = {tenant.org_id: probe.account(tenant.org_id) for tenant in tenants}
            markers: dict[FaultPoint, dict[str, Any]] = {}
            last_reserved_kill = 0.0
            for point, tenant in zip(POINTS, tenants, strict=True):
                markers[point] = kill_at(point, tenant, servers, tmp_path)
                if point not in SETTLED_AT_KILL:
                    last_reserved_kill = time.time()
                check_at_kill(point, tenant, markers[point], probe, servers.media_root)

            # Past every reservation's deadline and the sweeper's grace, a fresh process's start-up
            # sweep settles what the dead ones left; the checks run as soon as it answers.
            time.sleep(max(0.0, recovery_time(last_reserved_kill) - time.time()))
            recovered = servers.start()
            left = probe.rows(
                select(func.count()).select_from(Generation).where(Generation.status == "reserved")
            )
            assert left[0][0] == 0, "the start-up sweep left generations reserved"
            for point, tenant in zip(POINTS, tenants, strict=True):
                check_settled(point, tenant, before[tenant.org_id], probe, servers.media_root)

            # No bytes that no media item points at: the sweep deleted what the processes killed
            # between storing and committing had written (see the module docstring).
            orphans = stored_files(servers.media_root) - probe.all_media_keys()
            assert orphans == set(), orphans

            # The client, which never got an answer, retries with the same Idempotency-Key: the
            # generation that committed is replayed (its response was stored in that transaction),
            # the refunded ones run again; never two charges for one key.
            for point, tenant in zip(POINTS, tenants, strict=True):
                if point not in RETRIED:
                    continue  # their prompts hang or fail at the fake provider by design
                retry_after_crash(point, tenant, recovered.base, probe)
        finally:
            servers.stop_all()
            probe.close()
