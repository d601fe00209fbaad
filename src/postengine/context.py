"""Everything a request needs that lives as long as the app: built in the lifespan of `app.py`."""

from dataclasses import dataclass

import httpx
from anyio import CapacityLimiter
from starlette.requests import Request

from postengine.auth.authenticator import Authenticator
from postengine.config import Settings
from postengine.db import Database
from postengine.generation.models import ImageModel
from postengine.generation.providers import ImageProvider
from postengine.idempotency.locks import LockStore
from postengine.kit.clock import Clock
from postengine.media.storage import MediaStorage
from postengine.orgs.snapshot import OrgCache
from postengine.ratelimit.store import RateLimitStore


@dataclass
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    authenticator: Authenticator
    orgs: OrgCache
    rate_limits: RateLimitStore
    providers: dict[ImageModel, list[ImageProvider]]
    storage: MediaStorage
    cpu: CapacityLimiter  # bounds drawing/encoding threads to the number of cores
    http: httpx.AsyncClient  # outgoing HTTP (providers): one connection pool for the process
    locks: LockStore  # Idempotency-Key locks: in-process, or Redis shared by every process


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx
