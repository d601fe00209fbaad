"""Generating an image, paid for with credits (API.md §4, DESIGN.md §2).

1. safety filter; 2. short transaction: reserve credits + `generation` row (`reserved`);
3. outside any transaction: provider → resize → WebP encode (worker threads) → storage;
4. short transaction: media row + generation `completed`, or refund + `failed`.
A sweeper refunds generations left `reserved` past their deadline by a crash.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
from PIL import Image
from sqlalchemy import Connection

from postengine.auth.authenticator import Caller
from postengine.config import Settings
from postengine.context import AppContext
from postengine.credits import service as credits
from postengine.errors import ApiError, GenerationFailed, PromptBlocked, ProviderUnavailable
from postengine.generation import repository
from postengine.generation.models import MODEL_SPECS, output_size
from postengine.generation.providers import (
    ImageRequest,
    ProviderBlocked,
    ProviderError,
    ProviderMisconfigured,
    ProviderOverloaded,
)
from postengine.generation.providers.offline import RENDER_MS
from postengine.generation.schemas import GeneratedImage, GenerateImageRequest
from postengine.idempotency import Recorder
from postengine.idempotency.errors import ClaimLost
from postengine.kit import listcache
from postengine.kit.clock import iso, to_datetime
from postengine.kit.ids import new_id
from postengine.kit.image import encode_webp, resize_to
from postengine.kit.timing import ServerTiming
from postengine.media import service as media_service
from postengine.media.inspect import make_thumbnail
from postengine.media.storage.base import sibling_key
from postengine.ops import metrics
from postengine.safety import check_prompt

log = logging.getLogger("postengine.generation")


@dataclass(frozen=True, slots=True)
class _Encoded:
    data: bytes
    width: int
    height: int
    sha256: str
    encode_ms: float
    thumbnail: bytes  # WebP, for the media library's thumbnail_url


def _finish(image: Image.Image, width: int, height: int, quality: int) -> _Encoded:
    start = time.perf_counter()
    width, height = no_upscale(image.size, width, height)
    if image.size != (width, height):
        image = resize_to(image, width, height)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    data = encode_webp(image, quality=quality)
    thumbnail = make_thumbnail(image)
    return _Encoded(
        data, width, height, hashlib.sha256(data).hexdigest(), (time.perf_counter() - start) * 1000, thumbnail
    )


def no_upscale(source: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """The output size: the model's size, or, when the provider's image is smaller (an operator chose
    a smaller tier), the largest size of the same shape that fits in it, in multiples of 8. Images
    are only ever scaled down (PROVIDERS.md)."""
    scale = min(source[0] / width, source[1] / height)
    if scale >= 1:
        return width, height
    return max(8, int(width * scale) // 8 * 8), max(8, int(height * scale) // 8 * 8)


async def generate_image(
    ctx: AppContext,
    caller: Caller,
    body: GenerateImageRequest,
    timing: ServerTiming | None = None,
    record: Recorder | None = None,
) -> GeneratedImage:
    """`_generate_image`, timed for /metrics by model and outcome. Only generations that reserved
    credits are counted: an error after a reservation always says how much was refunded
    (`credits_refunded`), while the safety filter and a short balance refuse before any."""
    started = time.perf_counter()
    try:
        result = await _generate_image(ctx, caller, body, timing, record)
    except ApiError as exc:
        if "credits_refunded" in exc.fields:
            outcome = next((name for kind, name in _OUTCOMES if isinstance(exc, kind)), "failed")
            metrics.observe_generation(str(body.model), outcome, time.perf_counter() - started)
        raise
    except BaseException:
        metrics.observe_generation(str(body.model), "interrupted", time.perf_counter() - started)
        raise
    metrics.observe_generation(str(body.model), "completed", time.perf_counter() - started)
    return result


_OUTCOMES: tuple[tuple[type[ApiError], str], ...] = (
    (PromptBlocked, "blocked"),
    (ProviderUnavailable, "unavailable"),
    (GenerationFailed, "failed"),
)


async def _generate_image(
    ctx: AppContext,
    caller: Caller,
    body: GenerateImageRequest,
    timing: ServerTiming | None = None,
    record: Recorder | None = None,
) -> GeneratedImage:
    timing = timing or ServerTiming()
    verdict = check_prompt(body.prompt)
    if verdict is not None:
        raise PromptBlocked(verdict.message, details={"category": str(verdict.category)})

    spec = MODEL_SPECS[body.model]
    width, height = output_size(body.model, body.aspect_ratio)
    generation_id = new_id("gen")
    media_id = media_id_of(generation_id)
    now = to_datetime(ctx.clock.time())

    deadline = now + timedelta(seconds=ctx.settings.generation_deadline_seconds)

    def reserve(conn: Connection) -> credits.Reservation:
        reservation = credits.reserve(
            conn, org_id=caller.org_id, cost=spec.credits, generation_id=generation_id, now=now
        )
        repository.insert_generation(
            conn,
            id=generation_id,
            org_id=caller.org_id,
            api_key_id=caller.key_id,
            model=str(body.model),
            aspect_ratio=str(body.aspect_ratio),
            prompt=body.prompt,
            status="reserved",
            credits=spec.credits,
            allowance_part=reservation.allowance_part,
            bonus_part=reservation.bonus_part,
            period_start=reservation.period_start,
            created_at=now,
            deadline_at=deadline,
        )
        return reservation

    with timing.measure("db"):
        reservation = await ctx.db.run(reserve)
    metrics.credits_reserved(spec.credits)  # counted once committed
    ctx.orgs.invalidate(caller.org_id)

    key, thumb_key = _image_keys(ctx, caller.org_id, generation_id)

    async def refund(error: str) -> credits.Balance | None:
        """Refund once, and when this call refunded, drop whatever bytes were already stored."""
        balance = await refund_generation(
            ctx,
            generation_id=generation_id,
            org_id=caller.org_id,
            allowance_part=reservation.allowance_part,
            bonus_part=reservation.bonus_part,
            period_start=reservation.period_start,
            error=error,
        )
        if balance is not None:
            await _discard(ctx, key, thumb_key)
        return balance

    try:
        with anyio.fail_after(ctx.settings.generation_deadline_seconds):
            with timing.measure("provider"):
                image, provider_name = await _run_providers(
                    ctx,
                    ImageRequest(
                        body.model,
                        body.prompt,
                        body.aspect_ratio,
                        width,
                        height,
                        deadline=anyio.current_time() + ctx.settings.generation_deadline_seconds,
                    ),
                )
            if RENDER_MS in image.info:
                timing.add("draw", image.info[RENDER_MS])
            encoded = await anyio.to_thread.run_sync(
                _finish, image, width, height, ctx.settings.webp_quality, limiter=ctx.cpu
            )
            timing.add("encode", encoded.encode_ms)
            with timing.measure("store"):
                await ctx.storage.put(key, encoded.data, "image/webp")
                await ctx.storage.put(thumb_key, encoded.thumbnail, "image/webp")
    except ProviderBlocked as exc:
        balance = await refund(f"blocked by provider: {exc.reason}")
        raise PromptBlocked(
            f"This prompt was blocked by the image provider's safety filter: {exc.reason}",
            fields=_refund_fields(spec.credits, balance),
            details={"category": exc.category},
        ) from None
    except ProviderMisconfigured as exc:
        balance = await refund(f"provider misconfigured: {exc}")
        raise ProviderUnavailable(
            f"The model {body.model} is not available right now: its image provider is not configured "
            "correctly on this server (the operator has been told in the logs). Your credits were refunded.",
            fields={**_refund_fields(spec.credits, balance), "retry_after": exc.retry_after},
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except ProviderOverloaded as exc:
        balance = await refund(f"provider over capacity: {exc}")
        raise ProviderUnavailable(
            "The image provider is over capacity. Your credits were refunded; retry later.",
            fields={**_refund_fields(spec.credits, balance), "retry_after": exc.retry_after},
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except (ProviderError, TimeoutError, OSError, ValueError) as exc:
        log.warning("generation %s failed: %s", generation_id, type(exc).__name__, exc_info=exc)
        balance = await refund(f"{type(exc).__name__}: {exc}"[:500])
        raise _failed(spec.credits, balance) from None
    except BaseException:
        # Cancellation (client gone, shutdown) or a bug: refund without waiting for the sweeper.
        with anyio.CancelScope(shield=True):
            await refund("interrupted")
        raise

    completed_at = to_datetime(ctx.clock.time())
    result = GeneratedImage(
        media_id=media_id,
        model=body.model,
        aspect_ratio=body.aspect_ratio,
        width=encoded.width,
        height=encoded.height,
        credits_used=spec.credits,
        credits_remaining=reservation.balance.remaining,
        status="completed",
        image_url=f"{ctx.settings.media_base_url}/{key}",
        media_ids=[media_id],
        created_at=iso(completed_at) or "",
        message="Image generated successfully. Attach it to a post using media_ids.",
    )

    def complete(conn: Connection) -> bool:
        if not repository.mark(
            conn,
            generation_id,
            status="completed",
            at=completed_at,
            media_id=media_id,
            provider=provider_name,
        ):
            return False
        repository.add_media(
            conn,
            id=media_id,
            org_id=caller.org_id,
            type="image",
            status="ready",
            source="ai",
            filename=f"{media_id}.webp",
            content_type="image/webp",
            size=len(encoded.data),
            width=encoded.width,
            height=encoded.height,
            storage_key=key,
            thumbnail_key=thumb_key,
            sha256=encoded.sha256,
            ai_model=str(body.model),
            ai_prompt=body.prompt,
            ai_aspect_ratio=str(body.aspect_ratio),
            created_at=completed_at,
        )
        if record is not None:  # the Idempotency-Key's response, committed with the result
            record(conn, 200, result.model_dump(mode="json"))
        return True

    try:
        with timing.measure("db"):
            settled = await ctx.db.run(complete)
    except ClaimLost:
        # Another request with the same Idempotency-Key committed its result first: this one was
        # rolled back whole; refund it, and the caller answers with the other's response.
        await refund("duplicate of an idempotent request that finished first")
        raise
    except Exception:
        # Recording failed (database error). Refund now rather than after the deadline; the refund
        # is conditional on the generation still being `reserved`, so if the commit did happen
        # (connection lost after it), nothing is refunded and the result stands.
        log.exception("recording generation %s failed", generation_id)
        balance = await refund("could not record the result")
        if balance is not None:
            raise _failed(spec.credits, balance) from None
        settled = True
    ctx.orgs.invalidate(caller.org_id)
    listcache.invalidate(ctx.db, listcache.MEDIA, caller.org_id)  # the new image is in GET /media
    if not settled:
        # The sweeper refunded this generation while it ran past its deadline: it is not charged,
        # so it must not produce a media item either.
        await _discard(ctx, key, thumb_key)
        raise _failed(spec.credits, None)
    metrics.credits_settled(spec.credits)

    return result


def media_id_of(generation_id: str) -> str:
    """The id of a generation's media item: chosen with the generation (same random part), so that
    the sweeper, which knows only the generation, can find bytes a dead process had stored."""
    return "med_" + generation_id.removeprefix("gen_")


def _image_keys(ctx: AppContext, org_id: str, generation_id: str) -> tuple[str, str]:
    key = media_service.original_key(ctx, org_id, media_id_of(generation_id), "webp")  # per organisation
    return key, sibling_key(key, "thumb.webp")


async def _discard(ctx: AppContext, *keys: str) -> None:
    """Delete the bytes of a generation that did not complete; a failure is logged, not raised (they
    are never served: no media row points at them)."""
    for key in keys:
        try:
            await ctx.storage.delete(key)
        except Exception:
            log.exception("could not delete %s of a failed generation", key)


async def _run_providers(ctx: AppContext, request: ImageRequest) -> tuple[Image.Image, str]:
    """Each provider of the model's chain in turn; a safety block ends the chain at once.

    When every provider fails, the client hears about the last real upstream failure; a provider
    that is merely misconfigured (already logged for the operator) is reported only when nothing
    else was tried."""
    errors: list[ProviderError] = []
    for provider in ctx.providers[request.model]:
        try:
            return await provider.generate(request), provider.name
        except ProviderBlocked:
            raise
        except ProviderError as exc:
            log.info("provider %s failed for %s: %s", provider.name, request.model, exc)
            errors.append(exc)
    assert errors, f"model {request.model} has no provider"
    real = [exc for exc in errors if not isinstance(exc, ProviderMisconfigured)]
    raise (real or errors)[-1]


async def refund_generation(
    ctx: AppContext,
    *,
    generation_id: str,
    org_id: str,
    allowance_part: int,
    bonus_part: int,
    period_start: datetime,
    error: str,
) -> credits.Balance | None:
    """Mark the generation failed and return its credits, once. None if it was already settled."""
    now = to_datetime(ctx.clock.time())

    def refund(conn: Connection) -> credits.Balance | None:
        if not repository.mark(conn, generation_id, status="failed", at=now, error=error):
            return None
        return credits.refund(
            conn,
            org_id=org_id,
            generation_id=generation_id,
            allowance_part=allowance_part,
            bonus_part=bonus_part,
            period_start=period_start,
            now=now,
        )

    balance = await ctx.db.run(refund)
    if balance is not None:
        metrics.credits_refunded(allowance_part + bonus_part)
    ctx.orgs.invalidate(org_id)
    return balance


def sweep_interval(settings: Settings) -> float:
    """How often the sweeper looks: every 30 s, or every deadline when that is shorter."""
    return min(30.0, settings.generation_deadline_seconds)


async def sweep_expired(ctx: AppContext, grace_seconds: float | None = None) -> int:
    """Refund generations stuck in `reserved` past their deadline (the process died mid-way).

    A live process settles its own generation at the deadline at the latest; the grace (a quarter of
    the deadline, at most 30 s) leaves it time to write that down before the sweeper steps in. Either
    way the refund is conditional on the generation still being `reserved`, so it happens once."""
    if grace_seconds is None:
        grace_seconds = min(30.0, ctx.settings.generation_deadline_seconds / 4)
    cutoff = to_datetime(ctx.clock.time() - grace_seconds)
    stuck = await ctx.db.run_read(lambda conn: repository.expired_reservations(conn, cutoff))
    refunded = 0
    for gen in stuck:
        balance = await refund_generation(
            ctx,
            generation_id=gen.id,
            org_id=gen.org_id,
            allowance_part=gen.allowance_part,
            bonus_part=gen.bonus_part,
            period_start=gen.period_start,
            error="deadline passed (sweeper)",
        )
        if balance is not None:
            refunded += 1
            # A process that died after storing the image (before recording it) left its bytes.
            await _discard(ctx, *_image_keys(ctx, gen.org_id, gen.id))
    if refunded:
        log.warning("sweeper refunded %d generations stuck past their deadline", refunded)
    return refunded


def _refund_fields(cost: int, balance: credits.Balance | None) -> dict[str, int]:
    fields = {"credits_refunded": cost if balance is not None else 0}
    if balance is not None:
        fields["credits_remaining"] = balance.remaining
    return fields


def _failed(cost: int, balance: credits.Balance | None) -> GenerationFailed:
    return GenerationFailed(
        "Image generation failed. Your credits were refunded; retry with exponential backoff.",
        fields=_refund_fields(cost, balance) if balance is not None else {"credits_refunded": cost},
    )
