"""Settings of the operations endpoints, read like every other setting (`PE_` prefix, `.env`).

Kept apart from `config.Settings` because `/metrics` answers without an app context (it reads no
database): it must work while the lifespan starts, and in any process that shares the metrics."""

from functools import cache

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PE_", env_file=".env", extra="ignore")

    # Bearer token required on /metrics when set. Unset: /metrics is open, so keep it off the
    # public listener (docs/deploy.md).
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `PE_METRICS_TOKEN=` (as compose writes an unset `${PE_METRICS_TOKEN:-}`) means no token,
        # not "the empty token".
        return None if value == "" else value


@cache
def ops_settings() -> OpsSettings:
    return OpsSettings()
