"""Signed upload URLs of the embedded mode: `{base}/uploads/{media_id}?expires=…&signature=…`.

The server itself plays the part of an S3 presigned PUT URL (see `MediaStorage.upload_url`). The
signature is an HMAC-SHA256 under the server's secret over everything the upload is bound to (the
media id, its storage key, the declared content type and size, the expiry), so none of them can
be changed without the secret, and the URL works for nobody after `expires`.
"""

import re
from urllib.parse import urlencode

from postengine.kit.crypto import keyed_hash, same

_PURPOSE = "media-upload-url"
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(r"[0-9]{1,12}")


def signature(secret: bytes, *, media_id: str, key: str, content_type: str, size: int, expires: int) -> str:
    return keyed_hash(secret, f"{media_id}\n{key}\n{content_type}\n{size}\n{expires}", purpose=_PURPOSE)


def signed_url(
    base_url: str, secret: bytes, *, media_id: str, key: str, content_type: str, size: int, expires: int
) -> str:
    sig = signature(secret, media_id=media_id, key=key, content_type=content_type, size=size, expires=expires)
    return f"{base_url.rstrip('/')}/uploads/{media_id}?{urlencode({'expires': expires, 'signature': sig})}"


def parse_expires(value: str | None) -> int | None:
    return int(value) if value is not None and _EXPIRES.fullmatch(value) else None


def well_formed(sig: str | None) -> bool:
    return sig is not None and _SIGNATURE.fullmatch(sig) is not None


def verify(
    secret: bytes, sig: str, *, media_id: str, key: str, content_type: str, size: int, expires: int
) -> bool:
    expected = signature(
        secret, media_id=media_id, key=key, content_type=content_type, size=size, expires=expires
    )
    return same(expected, sig)
