"""A Hypothesis state machine for the credit ledger (DESIGN.md §4), driven through the real app.

Rules: an admin grants a credit pack (`credits.grant_pack`, what `postengine credits grant` runs,
then the epoch bump it does); `POST /ai/generate-image` succeeds, fails at the provider (500, 503,
provider-side block), runs past its deadline, or is refused for want of credits (402); a process
dies right after reserving (a `reserved` generation is left behind) and the sweeper refunds it once
its deadline and grace have passed; a live generation stalls at the provider until the sweeper has
refunded it, then succeeds upstream (it must stay refunded, with no media); an `Idempotency-Key` is
used again: with the same body while its response is kept (the first response byte for byte, no
charge, no new media), with another body or on another endpoint (422), after its first request
failed (runs again), or after its 24 hours (runs again); time passes, across billing periods too
(the allowance is renewed; a reservation from an earlier period is refunded as bonus credits).

After every step the database and storage are read and must satisfy: balance ≥ 0;
`sum(ledger) == balance`; one reservation and at most one refund per generation; every `completed`
generation has exactly one media item whose bytes (and thumbnail) are in storage; no `failed`
generation has one; no media item exists without its completed generation, nor any file in storage
without its media item; the model's balance (allowance used, bonus, as of now) and counts of
generations equal the real ones.

A sync test that drives its own event loop (as tests/api/test_fuzz.py does), so that Hypothesis
can run each example; each example is a new organisation on the same app, whose clock only moves
forward. Runs on SQLite and PostgreSQL (the conftest parametrisation of `settings` and `db`).
"""

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from PIL import Image
from sqlalchemy import Connection, select

from postengine.app import create_app
from postengine.auth import keys as key_service
from postengine.auth.authenticator import bump_epoch
from postengine.auth.scopes import Scope
from postengine.config import Settings
from postengine.context import AppContext
from postengine.credits import repository as credit_repo
from postengine.credits import service as credits
from postengine.credits.plans import PLANS, Plan
from postengine.db import Database
from postengine.errors import InsufficientCredits
from postengine.generation import repository as generation_repo
from postengine.generation import service as generation_service
from postengine.generation.models import MODEL_SPECS, AspectRatio, ImageModel
from postengine.generation.providers import (
    ImageProvider,
    ImageRequest,
    ProviderBlocked,
    ProviderFailed,
    ProviderOverloaded,
)
from postengine.kit.clock import FakeClock, add_months, to_datetime
from postengine.kit.ids import new_id
from postengine.models import CreditAccount, CreditLedgerEntry, Generation, Media
from postengine.orgs import service as orgs

T = TypeVar("T")

GEN = "/api/v1/ai/generate-image"
POSTS = "/api/v1/posts"
PLAN = Plan.STARTER  # 50 credits a month: a few generations reach the bottom, so 402 is exercised
ALLOWANCE = PLANS[PLAN].monthly_credits
DAY = 86_400
TIMEOUT_DEADLINE = 0.05  # seconds of real time, only while the provider hangs
OVERLOADED_RETRY_AFTER = 7
MODELS = list(ImageModel)
RATIOS = list(AspectRatio)
FAILURES = ["failed", "overloaded", "blocked", "timeout"]
OUTCOMES = st.just("ok") | st.sampled_from(FAILURES)  # half succeed, so that replays have material
FAILED_AS = {
    "failed": (500, "generation_failed"),
    "timeout": (500, "generation_failed"),
    "overloaded": (503, "provider_unavailable"),
    "blocked": (400, "prompt_blocked"),
}

_serial = itertools.count()


class ScriptedProvider:
    """The upstream edge, told what to do before each request: an image (a small one: the service
    keeps its shape and never upscales, so encoding stays cheap), an error, or a hang."""

    name = "scripted"

    def __init__(self) -> None:
        self.outcome = "ok"
        self.stalled = asyncio.Event()  # "stall": set once the provider is waiting
        self.resume = asyncio.Event()  # "stall": the provider answers (with an image) once this is set

    async def generate(self, request: ImageRequest) -> Image.Image:
        if self.outcome == "stall":
            self.stalled.set()
            await self.resume.wait()
        if self.outcome == "failed":
            raise ProviderFailed("upstream 502")
        if self.outcome == "overloaded":
            raise ProviderOverloaded("upstream 429", retry_after=OVERLOADED_RETRY_AFTER)
        if self.outcome == "blocked":
            raise ProviderBlocked("the image was flagged")
        if self.outcome == "timeout":
            await asyncio.sleep(3600)  # cancelled at the generation deadline
            raise AssertionError("unreachable")
        return Image.new("RGB", (max(8, request.width // 16), max(8, request.height // 16)), (30, 120, 200))


@dataclass
class Harness:
    """One app, its event loop and client, shared by every example of one test run."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    ctx: AppContext
    clock: FakeClock
    settings: Settings
    provider: ScriptedProvider

    def stored_files(self) -> set[str]:
        root = self.settings.media_root / "media"
        return {path.relative_to(root).as_posix() for path in root.glob("*/*")} if root.exists() else set()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@dataclass(frozen=True)
class Kept:
    """The response kept for an Idempotency-Key: the request's body, its bytes, when it was made."""

    body: dict[str, str]
    content: bytes
    at: float


@dataclass
class Model:
    """The organisation's credits as they are now (a period rollover counted as soon as it is due,
    as `GET /me` shows it, even before a write records it)."""

    anchor: datetime  # the organisation's creation: periods start on its day of the month
    period: int = 0  # months since the anchor
    allowance_used: int = 0
    bonus: int = 0
    # Generations a dead process left `reserved`: id → (deadline, period, allowance part, bonus part).
    pending: dict[str, tuple[float, int, int, int]] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0

    @property
    def balance(self) -> int:
        return ALLOWANCE - self.allowance_used + self.bonus

    def catch_up(self, now: float) -> None:
        """Periods that ended by `now`: the unused allowance expires, a new one starts."""
        while add_months(self.anchor, self.period + 1) <= to_datetime(now):
            self.period += 1
            self.allowance_used = 0

    def charge(self, cost: int) -> tuple[int, int]:
        """Allowance first, then bonus; the parts taken from each."""
        from_allowance = min(cost, ALLOWANCE - self.allowance_used)
        self.allowance_used += from_allowance
        self.bonus -= cost - from_allowance
        return from_allowance, cost - from_allowance

    def refund(self, period: int, allowance_part: int, bonus_part: int) -> None:
        """To the buckets the credits came from; allowance from an ended period comes back as bonus."""
        if period == self.period:
            self.allowance_used -= allowance_part
            self.bonus += bonus_part
        else:
            self.bonus += allowance_part + bonus_part


class LedgerMachine(RuleBasedStateMachine):
    keys = Bundle("keys")  # Idempotency-Keys used so far

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        self.org_id = ""
        self.key_id = ""
        self.headers: dict[str, str] = {}
        self.model = Model(anchor=to_datetime(harness.clock.time()))
        self.kept: dict[str, Kept] = {}  # key → its kept response (none: released, or never 2xx)
        self.media_ids: set[str] = set()  # made in this example
        self.files_before: set[str] = set()  # in storage before this example (earlier examples')

    @property
    def now(self) -> float:
        return self.h.clock.time()

    def advance(self, seconds: float) -> None:
        self.h.clock.advance(seconds)
        self.model.catch_up(self.now)

    # ------------------------------------------------------------------ setup

    @initialize()
    def new_organisation(self) -> None:
        now = to_datetime(self.now)
        ctx = self.h.ctx

        async def create() -> tuple[str, str, str]:
            async with ctx.db.write() as session:
                org = await orgs.create_org(session, name=f"Ledger {next(_serial)}", plan=PLAN, now=now)
                key, secret = await key_service.create_key(
                    session,
                    secret_key=self.h.settings.secret,
                    org_id=org.id,
                    name="machine",
                    scopes=frozenset(Scope),
                    now=now,
                )
                return org.id, key.id, secret

        self.files_before = self.h.stored_files()
        self.org_id, self.key_id, secret = self.h.run(create())
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.model = Model(anchor=now)

    # ------------------------------------------------------------------ helpers

    def post(self, path: str, body: dict[str, str], key: str | None = None) -> httpx.Response:
        headers = dict(self.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.h.run(self.h.client.post(path, json=body, headers=headers))

    def generate(self, body: dict[str, str], outcome: str, key: str | None) -> str | None:
        """POST /ai/generate-image with the provider doing `outcome`; checks the response against
        the model, updates both the model and the key's kept response; the media id on success."""
        self.h.provider.outcome = outcome
        settings = self.h.settings
        normal = settings.generation_deadline_seconds
        if outcome == "timeout":  # the app reads its settings per request (ctx.settings is this object)
            settings.generation_deadline_seconds = TIMEOUT_DEADLINE
        try:
            response = self.post(GEN, body, key)
        finally:
            settings.generation_deadline_seconds = normal
            self.h.provider.outcome = "ok"
        assert response.headers.get("Idempotent-Replayed") is None  # it ran
        media_id = self.expect_generation(response, body, outcome)
        if key is not None:
            if media_id is None:
                self.kept.pop(key, None)  # not kept: a retry runs again
            else:
                self.kept[key] = Kept(body, response.content, self.now)
        if media_id is not None:
            self.media_ids.add(media_id)
        return media_id

    def expect_generation(self, response: httpx.Response, body: dict[str, str], outcome: str) -> str | None:
        cost = MODEL_SPECS[ImageModel(body["model"])].credits
        payload = response.json()
        assert set(payload) == {"data", "error", "meta"}, payload
        if cost > self.model.balance:
            assert response.status_code == 402, response.text
            error = payload["error"]
            assert error["code"] == "insufficient_credits"
            assert (error["credits_remaining"], error["credits_required"]) == (self.model.balance, cost)
            return None
        parts = self.model.charge(cost)
        if outcome == "ok":
            assert response.status_code == 200, response.text
            data = payload["data"]
            assert data["credits_used"] == cost
            assert data["credits_remaining"] == self.model.balance
            assert data["media_ids"] == [data["media_id"]]
            self.model.completed += 1
            return str(data["media_id"])
        self.model.refund(self.model.period, *parts)  # in full, at once
        assert (response.status_code, payload["error"]["code"]) == FAILED_AS[outcome], response.text
        assert payload["error"]["credits_refunded"] == cost
        assert payload["error"]["credits_remaining"] == self.model.balance
        if outcome == "overloaded":
            assert response.headers["Retry-After"] == str(OVERLOADED_RETRY_AFTER)
        self.model.failed += 1
        return None

    def kept_response(self, key: str) -> Kept | None:
        kept = self.kept.get(key)
        if kept is None or self.now >= kept.at + self.h.settings.idempotency_ttl_seconds:
            return None
        return kept

    # ------------------------------------------------------------------ rules

    @rule(amount=st.integers(min_value=1, max_value=40))
    def grant(self, amount: int) -> None:
        """`postengine credits grant AMOUNT --org ORG`: a pack, then the epoch bump."""
        now = to_datetime(self.now)
        balance = self.h.run(
            self.h.ctx.db.run(
                lambda conn: credits.grant_pack(conn, org_id=self.org_id, amount=amount, now=now)
            )
        )
        bump_epoch(self.h.settings)
        self.model.bonus += amount
        assert balance.remaining == self.model.balance

    @rule(
        model=st.sampled_from(MODELS),
        ratio=st.sampled_from(RATIOS),
        outcome=OUTCOMES,
        keyed=st.sampled_from([True, True, False]),
        target=keys,
    )
    def generate_image(self, model: ImageModel, ratio: AspectRatio, outcome: str, keyed: bool) -> str:
        body = {
            "prompt": f"a lighthouse at dusk, take {next(_serial)}",
            "model": str(model),
            "aspect_ratio": str(ratio),
        }
        key = f"ledger-{new_id('k')}" if keyed else None
        self.generate(body, outcome, key)
        return key or "unused-" + new_id("k")  # a key never sent is as good as a fresh one

    @rule(key=keys, outcome=OUTCOMES)
    def same_key_same_body(self, key: str, outcome: str) -> None:
        """Kept: the first response again, byte for byte, charging nothing and making nothing (the
        invariants check balance and media). Released or expired: the request runs again."""
        kept = self.kept_response(key)
        if kept is None:
            body = self.kept[key].body if key in self.kept else self.fresh_body()
            self.generate(body, outcome, key)
            return
        response = self.post(GEN, kept.body, key)
        assert response.status_code == 200, response.text
        assert response.headers.get("Idempotent-Replayed") == "true"
        assert response.content == kept.content

    @rule(key=keys, change=st.sampled_from(["prompt", "model", "endpoint"]), outcome=OUTCOMES)
    def same_key_other_request(self, key: str, change: str, outcome: str) -> None:
        """Kept: 422 `idempotency_key_mismatch`, nothing else happens. Otherwise the new body runs."""
        kept = self.kept_response(key)
        body = dict(kept.body if kept is not None else self.fresh_body())
        if kept is not None and change == "endpoint":
            response = self.post(POSTS, {"content": "hello", "platforms": ["twitter"]}, key)
        else:
            if change == "model":
                body["model"] = next(m for m in MODELS if m != body["model"])
            else:
                body["prompt"] += " (again)"
            if kept is None:
                self.generate(body, outcome, key)
                return
            response = self.post(GEN, body, key)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "idempotency_key_mismatch"

    def fresh_body(self) -> dict[str, str]:
        return {
            "prompt": f"a harbour at noon, take {next(_serial)}",
            "model": "flux-schnell",
            "aspect_ratio": "1:1",
        }

    @rule(model=st.sampled_from(MODELS))
    def process_dies_after_reserving(self, model: ImageModel) -> None:
        """What a process that died right after step 2 of DESIGN.md §2 leaves: a `reserved` row."""
        cost = MODEL_SPECS[model].credits
        gen_id = new_id("gen")
        at = to_datetime(self.now)
        deadline = self.now + self.h.settings.generation_deadline_seconds

        def half_done(conn: Connection) -> credits.Reservation:
            reservation = credits.reserve(conn, org_id=self.org_id, cost=cost, generation_id=gen_id, now=at)
            generation_repo.insert_generation(
                conn,
                id=gen_id,
                org_id=self.org_id,
                api_key_id=self.key_id,
                model=str(model),
                aspect_ratio="1:1",
                prompt="left behind",
                status="reserved",
                credits=cost,
                allowance_part=reservation.allowance_part,
                bonus_part=reservation.bonus_part,
                period_start=reservation.period_start,
                created_at=at,
                deadline_at=to_datetime(deadline),
            )
            return reservation

        try:
            reservation = self.h.run(self.h.ctx.db.run(half_done))
        except InsufficientCredits as exc:
            assert cost > self.model.balance
            assert exc.fields["credits_remaining"] == self.model.balance
            return
        assert cost <= self.model.balance
        parts = self.model.charge(cost)
        assert (reservation.allowance_part, reservation.bonus_part) == parts
        self.model.pending[gen_id] = (deadline, self.model.period, *parts)
        # That process's write reaches this one's `GET /me` snapshot only after the snapshot's TTL
        # (by design, DESIGN.md: decisions never read it); the snapshot is not under test here.
        self.h.ctx.orgs.invalidate(self.org_id)

    @rule(seconds=st.sampled_from([0, 29, 30, 31, 120, 149, 150, 151]) | st.integers(0, 200))
    def sweep(self, seconds: int) -> None:
        """Time passes; the sweeper refunds every reservation past its deadline plus the grace."""
        self.advance(seconds)
        self.run_sweeper()

    def run_sweeper(self) -> None:
        cutoff = self.now - self.grace
        for _ in range(100):  # other examples' organisations may have leftovers too
            if not self.h.run(generation_service.sweep_expired(self.h.ctx)):
                break
        for gen_id, (deadline, period, *parts) in list(self.model.pending.items()):
            if deadline < cutoff:
                del self.model.pending[gen_id]
                self.model.refund(period, *parts)
                self.model.failed += 1

    @property
    def grace(self) -> float:
        return min(30.0, self.h.settings.generation_deadline_seconds / 4)

    @rule(model=st.sampled_from(MODELS))
    def sweeper_overtakes_a_slow_generation(self, model: ImageModel) -> None:
        """A live generation whose provider answers only after the sweeper refunded it (its process
        looked dead): it must not be charged, nor leave a media item or bytes behind (DESIGN.md §2)."""
        cost = MODEL_SPECS[model].credits
        if cost > self.model.balance:
            return  # a 402 returns before any provider call; `generate_image` covers it
        body = {
            "prompt": f"a slow lighthouse, take {next(_serial)}",
            "model": str(model),
            "aspect_ratio": "1:1",
        }
        provider = self.h.provider
        provider.outcome, provider.stalled, provider.resume = "stall", asyncio.Event(), asyncio.Event()
        request = self.h.loop.create_task(self.h.client.post(GEN, json=body, headers=self.headers))
        try:
            self.h.run(asyncio.wait_for(provider.stalled.wait(), 30))
            period, parts = self.model.period, self.model.charge(cost)  # reserved while it stalls
            self.model.pending["stalled"] = (
                self.now + self.h.settings.generation_deadline_seconds,
                period,
                *parts,
            )
            self.advance(self.h.settings.generation_deadline_seconds + self.grace + 1)
            self.run_sweeper()
            assert "stalled" not in self.model.pending
        finally:
            provider.resume.set()
            response = self.h.run(request)
            provider.outcome = "ok"
        assert response.status_code == 500, response.text
        error = response.json()["error"]
        assert (error["code"], error["credits_refunded"]) == ("generation_failed", cost)

    @rule(key=keys, offset=st.sampled_from([-1, 0, 1]))
    def until_a_key_expires(self, key: str, offset: int) -> None:
        """To the second a kept response's 24 hours end (or one before or after)."""
        kept = self.kept.get(key)
        if kept is not None:
            self.advance(max(0.0, kept.at + self.h.settings.idempotency_ttl_seconds + offset - self.now))

    @rule(seconds=st.integers(0, 3_600) | st.integers(0, 3_600) | st.sampled_from([DAY, 10 * DAY, 31 * DAY]))
    def time_passes(self, seconds: int) -> None:
        """Minutes, or days: kept responses expire, and billing periods end (the unused allowance
        expires, a new one starts)."""
        self.advance(seconds)

    @rule()
    def read_balance_over_http(self) -> None:
        response = self.h.run(self.h.client.get("/api/v1/me", headers=self.headers))
        assert response.status_code == 200, response.text
        quota = response.json()["data"]["quota"]["ai_credits"]
        assert quota == {
            "used": self.model.allowance_used,
            "limit": ALLOWANCE,
            "bonus": self.model.bonus,
            "remaining": self.model.balance,
        }

    # ------------------------------------------------------------------ invariants

    @invariant()
    def ledger_and_media_hold(self) -> None:
        if not self.org_id:
            return
        org_id = self.org_id

        def read(conn: Connection) -> tuple[Any, int, list[Any], list[Any], list[Any]]:
            account = conn.execute(
                select(
                    CreditAccount.allowance,
                    CreditAccount.allowance_used,
                    CreditAccount.bonus,
                    CreditAccount.period_end,
                ).where(CreditAccount.org_id == org_id)
            ).one()
            ledger = conn.execute(
                select(
                    CreditLedgerEntry.generation_id, CreditLedgerEntry.kind, CreditLedgerEntry.amount
                ).where(CreditLedgerEntry.org_id == org_id)
            ).all()
            generations = conn.execute(
                select(Generation.id, Generation.status, Generation.media_id, Generation.credits).where(
                    Generation.org_id == org_id
                )
            ).all()
            media = conn.execute(
                select(Media.id, Media.status, Media.storage_key, Media.thumbnail_key).where(
                    Media.org_id == org_id
                )
            ).all()
            return account, credit_repo.ledger_sum(conn, org_id), ledger, generations, media

        account, ledger_sum, ledger, generations, media = self.h.run(self.h.ctx.db.run_read(read))
        balance = account.allowance - account.allowance_used + account.bonus
        assert 0 <= account.allowance_used <= account.allowance and account.bonus >= 0 and balance >= 0
        assert ledger_sum == balance  # the row as written; a due rollover is recorded by the next write
        due = account.period_end.replace(tzinfo=UTC) <= to_datetime(self.now)  # UTC, naive on SQLite
        as_of_now = (
            (ALLOWANCE, 0, account.bonus)
            if due
            else (account.allowance, account.allowance_used, account.bonus)
        )
        assert as_of_now == (ALLOWANCE, self.model.allowance_used, self.model.bonus)

        kinds = Counter((row.generation_id, row.kind) for row in ledger if row.generation_id is not None)
        assert set(kinds.values()) <= {1}  # one reservation, at most one refund, per generation
        charged = {row.generation_id: -row.amount for row in ledger if row.kind == "generation"}
        media_by_id = {row.id: row for row in media}
        for gen in generations:
            assert charged[gen.id] == gen.credits
            if gen.status == "completed":
                assert (gen.id, "refund") not in kinds
                item = media_by_id[gen.media_id]
                assert item.status == "ready"
                assert self.h.run(self.h.ctx.storage.exists(item.storage_key))
                assert self.h.run(self.h.ctx.storage.exists(item.thumbnail_key))
            elif gen.status == "failed":
                assert (gen.id, "refund") in kinds
                assert gen.media_id is None
            else:
                assert gen.status == "reserved" and (gen.id, "refund") not in kinds
        assert {g for g, _ in kinds} == {g.id for g in generations}
        # Exactly one media item per completed generation, none for any other.
        assert sorted(media_by_id) == sorted(g.media_id for g in generations if g.status == "completed")
        assert Counter(g.status for g in generations) == Counter(
            completed=self.model.completed, failed=self.model.failed, reserved=len(self.model.pending)
        )

    @invariant()
    def no_bytes_without_a_media_item(self) -> None:
        """New in storage: an original and a thumbnail for every media item made, nothing else."""
        if not self.org_id:
            return
        made = self.h.stored_files() - self.files_before
        assert made == {f"{m}/{name}" for m in self.media_ids for name in ("original.webp", "thumb.webp")}


def test_credit_ledger_state_machine(settings: Settings, db: Database) -> None:
    """`db` migrates the database of this run; the app opens its own engine on our loop."""
    clock = FakeClock(float(int(time.time())))  # whole seconds: deadlines, TTLs, cutoffs compare exactly
    provider = ScriptedProvider()
    providers: dict[ImageModel, list[ImageProvider]] = {model: [provider] for model in ImageModel}
    app = create_app(settings, clock=clock, providers=providers, background=False)
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    harness = Harness(loop, client, app.state.ctx, clock, settings, provider)
    try:
        run_state_machine_as_test(
            lambda: LedgerMachine(harness),
            settings=hsettings(
                max_examples=40,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
