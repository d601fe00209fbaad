"""Where media bytes live. `MediaStorage` is the interface; `LocalStorage` is the embedded one,
`S3Storage` the scale-out one; `storage_from_settings` picks one from `PE_STORAGE_URL`."""

from datetime import timedelta
from urllib.parse import urlsplit

from postengine.config import Settings
from postengine.media.storage.base import MediaStorage, StorageError, StoredObject, sibling_key, staging_key
from postengine.media.storage.local import LocalStorage

__all__ = [
    "LocalStorage",
    "MediaStorage",
    "StorageError",
    "StoredObject",
    "sibling_key",
    "staging_key",
    "storage_from_settings",
]


class StorageConfigError(ValueError):
    """`PE_STORAGE_URL` and the settings that go with it do not describe a usable storage."""


def storage_from_settings(settings: Settings) -> MediaStorage:
    """`file://PATH` → `LocalStorage`; `s3://BUCKET[/PREFIX]` → `S3Storage` with the `PE_S3_*`
    settings (credentials left unset fall back to obstore's `AWS_*` environment variables and
    instance roles)."""
    url = settings.storage_url
    if url.startswith("file://"):
        return LocalStorage(settings.media_root)
    if not url.startswith("s3://"):
        raise StorageConfigError(
            f"PE_STORAGE_URL must start with file:// or s3:// (got {urlsplit(url).scheme or url[:20]!r}://…)"
        )
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not bucket:
        raise StorageConfigError("PE_STORAGE_URL=s3://BUCKET[/PREFIX] needs a bucket name")
    if settings.public_media_url is None:
        # The default (this server's /cdn) serves local files only: clients would get dead URLs.
        raise StorageConfigError(
            "PE_PUBLIC_MEDIA_URL must be set with s3:// storage: the public base URL (a CDN, or the "
            "bucket's public endpoint) under which media/… keys are served"
        )
    from obstore.store import S3Store  # only the scale-out mode needs it

    from postengine.media.storage.s3 import S3Storage

    config: dict[str, object] = {
        "region": settings.s3_region,
        "virtual_hosted_style_request": not settings.s3_path_style,
    }
    if settings.s3_endpoint_url:
        config["endpoint"] = settings.s3_endpoint_url
    if settings.s3_access_key_id is not None and settings.s3_secret_access_key is not None:
        config["access_key_id"] = settings.s3_access_key_id
        config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    elif (settings.s3_access_key_id is None) != (settings.s3_secret_access_key is None):
        raise StorageConfigError("set both PE_S3_ACCESS_KEY_ID and PE_S3_SECRET_ACCESS_KEY, or neither")
    client_options = {
        "allow_http": bool(settings.s3_endpoint_url and settings.s3_endpoint_url.startswith("http://")),
        "connect_timeout": "5s",
        "timeout": "120s",  # a whole request, e.g. promoting a 20 MiB image
    }
    # A few quick retries: a request waits on storage, so a bucket that is down must fail in seconds
    # (obstore's default keeps retrying for up to 3 minutes).
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=10)}
    store = S3Store(
        bucket,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]
        client_options=client_options,  # type: ignore[arg-type]
        retry_config=retry,  # type: ignore[arg-type]
    )
    return S3Storage(store)
