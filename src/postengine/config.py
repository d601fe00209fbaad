"""Settings: environment variables with the `PE_` prefix (and an optional `.env`), DESIGN.md §6."""

import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from postengine.generation.models import ImageModel

DEFAULT_GEMINI_MODELS: dict[ImageModel, str] = {
    ImageModel.NANO_BANANA_PRO: "gemini-3-pro-image-preview",
    ImageModel.GEMINI_3_PRO: "gemini-3-pro-image-preview",
}
DEFAULT_GEMINI_IMAGE_SIZES: dict[ImageModel, str] = {
    ImageModel.NANO_BANANA_PRO: "2K",
    ImageModel.GEMINI_3_PRO: "2K",
}

# The seed's example key. It is the demo key only on a loopback-bound embedded server, so the
# seed's curl example works unchanged there; `serve` refuses it on any other interface.
SEED_EXAMPLE_KEY = "pe_live_a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4"


_PLACEHOLDERS = {"changeme" * 4, "secret" * 6, "x" * 32}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = "sqlite+aiosqlite:///./data/postengine.db"
    # PostgreSQL connections per process: the pool, and how many more it may open under load. Every
    # process (API and worker) has its own: keep processes × (size + overflow) under the server's
    # max_connections (100 by default). A request waits up to 30 s for a free connection.
    database_pool_size: int = Field(5, ge=1, le=200)
    database_max_overflow: int = Field(10, ge=0, le=200)
    redis_url: str | None = None
    redis_prefix: str = "pe:"  # every Redis key of this deployment starts with it
    # file://PATH (served under /cdn) or s3://BUCKET[/PREFIX] (docs/scale-out.md, media storage).
    storage_url: str = "file://./data/media"
    # S3-compatible storage: unset endpoint → AWS's regional one; unset keys → obstore's AWS_*
    # environment variables or the instance role. Path-style (`endpoint/bucket/key`) for MinIO, moto.
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"  # Cloudflare R2: "auto"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_path_style: bool = False
    public_media_url: str | None = None  # default: http://{host}:{port}/cdn (required with s3://)
    secret_key: SecretStr | None = None  # default: generated into {data_dir}/secret on first use

    host: str = "127.0.0.1"
    port: int = 8000

    # Authentication cache: a positive lookup is reused this long without touching the database.
    # Revocation still takes effect at once: the CLI bumps an epoch that every lookup checks.
    auth_cache_seconds: float = 30.0
    # GET /me's quota snapshot: dropped at once on this process's own writes and on CLI changes.
    quota_cache_seconds: float = 2.0
    max_body_bytes: int = 1024 * 1024
    # A request body must keep coming: at least 64 KiB (or its end) per this many seconds spent
    # waiting for it, else 408 `request_timeout` and the connection is closed (`middleware._paced`).
    # A window, not a total: large uploads are legitimately long, dribbling clients are not.
    body_idle_timeout_seconds: float = Field(30.0, gt=0)
    generation_deadline_seconds: float = 120.0
    # How long a response stored under an Idempotency-Key is replayed (24 h).
    idempotency_ttl_seconds: float = Field(default=86400.0, gt=0)
    webp_quality: int = 82
    # Freed Pillow image buffers kept for reuse (each at most 16 MiB; 8 hold two 2048² images).
    # Without it every freed image goes back to the OS (about 1 ms for a 1024² image) and the next
    # one page-faults its way in again.
    image_block_cache: int = 8
    # model → ordered provider names, e.g. PE_PROVIDERS='{"flux-schnell": ["fal", "replicate", "offline"]}'.
    # A model not named gets its automatic chain (`generation.providers.registry.default_chain`):
    # the upstreams whose credentials are set, or the offline renderer when none are.
    providers: Annotated[dict[ImageModel, list[str]], NoDecode] = Field(default_factory=dict)

    # Upstream credentials (never logged; messages name the variable, not the value).
    gemini_api_key: SecretStr | None = None
    ideogram_api_key: SecretStr | None = None
    fal_key: SecretStr | None = None
    replicate_api_token: SecretStr | None = None
    # Upstream endpoints and model ids: preview ids get renamed and retired, so they are settings.
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    gemini_models: Annotated[dict[ImageModel, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_GEMINI_MODELS)
    )
    gemini_image_sizes: Annotated[dict[ImageModel, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_GEMINI_IMAGE_SIZES)
    )
    ideogram_base_url: str = "https://api.ideogram.ai"
    ideogram_model: str = "V_2"
    fal_base_url: str = "https://fal.run"
    fal_queue_url: str = "https://queue.fal.run"
    fal_model: str = "fal-ai/flux/schnell"
    fal_mode: str = "sync"  # "sync" (one request, image inline) or "queue" (submit, poll, fetch)
    replicate_base_url: str = "https://api.replicate.com"
    replicate_model: str = "black-forest-labs/flux-schnell"
    # A local FLUX.1-schnell folder for the `diffusers` provider (`pip install 'postengine[local]'`).
    diffusers_model_path: Path | None = None
    diffusers_device: str = "auto"
    diffusers_offload: bool = False
    # Every upstream call: at most this many retries, a cap on downloaded results, and a circuit
    # breaker that skips a provider for `circuit_reset_seconds` after `circuit_threshold` failures.
    provider_max_retries: int = Field(default=2, ge=0, le=5)
    provider_max_download_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    circuit_threshold: int = Field(default=5, ge=1)
    circuit_reset_seconds: float = Field(default=30.0, gt=0)

    demo_key: SecretStr = SecretStr(SEED_EXAMPLE_KEY)
    # JSON log lines for machines; unset: JSON unless the logs go to a terminal.
    log_json: bool | None = None
    log_level: str = "info"
    # Bearer token required on /metrics when set. Unset: /metrics is open, so keep it off the public
    # listener (docs/deploy.md).
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        # `PE_METRICS_TOKEN=` (what compose writes for an unset `${PE_METRICS_TOKEN:-}`) means no
        # token, not "the empty token".
        return None if value == "" else value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < 32 or secret.lower() in _PLACEHOLDERS or len(set(secret)) < 8:
            raise ValueError(
                "PE_SECRET_KEY must be at least 32 random characters (e.g. `python -c "
                "'import secrets; print(secrets.token_hex(32))'`), not a placeholder"
            )
        return value

    @field_validator("providers", mode="before")
    @classmethod
    def _parse_providers(cls, value: Any) -> Any:
        # PE_PROVIDERS='{"flux-schnell": ["offline"]}'; models not named get their automatic chain.
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("gemini_models", "gemini_image_sizes", mode="before")
    @classmethod
    def _parse_gemini_maps(cls, value: Any, info: ValidationInfo) -> Any:
        # PE_GEMINI_MODELS='{"gemini-3-pro": "gemini-2.5-flash-image"}' overrides the models it names.
        if isinstance(value, str):
            value = json.loads(value)
        defaults = DEFAULT_GEMINI_MODELS if info.field_name == "gemini_models" else DEFAULT_GEMINI_IMAGE_SIZES
        return {**defaults, **value} if isinstance(value, dict) else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def media_root(self) -> Path:
        """The folder of file:// storage; there is none with any other PE_STORAGE_URL."""
        if not self.storage_url.startswith("file://"):
            raise ValueError("media_root is only defined for file:// storage (PE_STORAGE_URL)")
        return Path(self.storage_url.removeprefix("file://"))

    @property
    def media_base_url(self) -> str:
        base = self.public_media_url or f"http://{_display_host(self.host)}:{self.port}/cdn"
        return base.rstrip("/")

    @cached_property
    def secret(self) -> bytes:
        """The server's secret for keyed hashes; created once under `data_dir` when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once agree on one secret.
            try:
                with open(path, "x", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(32))
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text(encoding="ascii").strip().encode()

    @property
    def epoch_path(self) -> Path:
        """Bumped by the CLI after changes to keys, organizations or credits: servers sharing this
        data directory drop their key cache and quota snapshots at once (`kit.epoch`)."""
        return self.data_dir / "auth-epoch"


def _display_host(host: str) -> str:
    return "localhost" if host in {"127.0.0.1", "0.0.0.0", "::", "::1"} else host  # noqa: S104
