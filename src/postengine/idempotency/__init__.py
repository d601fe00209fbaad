"""`Idempotency-Key` on the POST endpoints that create or charge: a retried request is answered with
the first one's response instead of running again (see `service`)."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

Recorder = Callable[[Connection, int, Any], None]
"""Called by a service inside its last write transaction with the response's status and `data`:
stores the whole response (envelope) with what that transaction commits."""
