"""Scaffolding for tests/crash: `postengine serve` processes that stop at a fault point, a fake fal.ai
that can hang on demand, and synchronous reads of the servers' database and media folder.

The fault points themselves live in `faultinject/sitecustomize.py` (see its docstring), loaded into
a server process by putting that folder on its PYTHONPATH.
"""

import functools
import io
import json
import os
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import httpx
from sqlalchemy import Connection, select

from postengine import migrate
from postengine.auth import keys as key_service
from postengine.auth.scopes import Scope
from postengine.credits import service as credits
from postengine.credits.plans import Plan
from postengine.db import Database
from postengine.kit.clock import utcnow
from postengine.models import CreditAccount, CreditLedgerEntry, Generation, Media, Organization
from postengine.orgs import service as orgs
from tests import processes
from tests.scaleout.cluster import EXE, FAL_KEY, FakeFal, free_port
from tests.scaleout.cluster import fake_fal as cluster_fake_fal
from tests.servers import reap, wait_until_serving

FAULTS_DIR = Path(__file__).with_name("faultinject")
SECRET = "crash-tests-secret-" + secrets.token_hex(16)
# Short, so that the sweeper may refund a dead process's generation soon: its grace is a quarter of
# this (0.75 s). Long enough that a live generation (a 64×64 image from a loopback fake) finishes
# well inside it, and that the victim of the `provider` point is killed long before its own deadline.
DEADLINE_SECONDS = 3.0
GRACE_SECONDS = min(30.0, DEADLINE_SECONDS / 4)  # generation.service.sweep_expired's default


class FaultPoint(StrEnum):
    """Where in a generation the server process is SIGKILLed (faultinject/sitecustomize.py)."""

    RESERVED = "reserved"  # reservation committed, provider not yet called
    PROVIDER = "provider"  # the fake provider holds the request (it hangs)
    STORED = "stored"  # provider answered; original + thumbnail written; nothing recorded
    COMPLETE_UNCOMMITTED = "complete_uncommitted"  # inside the completing transaction
    COMPLETE_COMMITTED = "complete_committed"  # completing transaction committed, no response sent
    REFUND_UNCOMMITTED = "refund_uncommitted"  # provider failed; inside the refund transaction
    REFUND_COMMITTED = "refund_committed"  # refund committed, no response sent

    @property
    def prompt(self) -> str:
        if self is FaultPoint.PROVIDER:
            return "a lighthouse at dusk [hang]"
        if self in (FaultPoint.REFUND_UNCOMMITTED, FaultPoint.REFUND_COMMITTED):
            return "a lighthouse at dusk [fail]"
        return "a lighthouse at dusk"


# -- the fake provider ---------------------------------------------------------------------------


class KillableFal(FakeFal):
    """tests.scaleout's FakeFal, except that a `[hang]` request first writes the marker file the
    test waits for (the server is now inside its provider call), and that GETs (the start-up
    credentials check) are refused, so no check ever leaves loopback."""

    marker: ClassVar[Path | None] = None
    release: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        prompt = str(json.loads(raw).get("prompt", ""))
        if "[hang]" in prompt and KillableFal.marker is not None:
            FakeFal.calls.append(prompt)
            write_marker(KillableFal.marker, {"point": FaultPoint.PROVIDER.value, "prompt": prompt})
            KillableFal.release.wait(120)  # the server that called is killed meanwhile
            return
        self.rfile = io.BytesIO(raw)  # FakeFal reads the body again
        super().do_POST()

    def do_GET(self) -> None:
        self._reply(401, {"detail": "No user found for Key ID and Secret"})


def write_marker(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content), encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def fake_fal() -> Iterator[str]:
    KillableFal.release = threading.Event()
    try:
        with cluster_fake_fal(KillableFal) as url:
            yield url
    finally:
        KillableFal.release.set()
        KillableFal.marker = None


# -- server processes ----------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Servers:
    """`postengine serve` processes on one data folder and database, each in a session of its own."""

    def __init__(self, tmp_path: Path, database_url: str, fal_url: str) -> None:
        self.tmp_path = tmp_path
        self.media_root = tmp_path / "data" / "media"
        self.started: list[Server] = []
        self.env = {
            **os.environ,
            "PE_DATA_DIR": str(tmp_path / "data"),
            "PE_DATABASE_URL": database_url,
            "PE_STORAGE_URL": f"file://{self.media_root}",
            "PE_SECRET_KEY": SECRET,
            "PE_LOG_LEVEL": "warning",
            "PE_LOG_JSON": "true",
            "PE_GENERATION_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
            "PE_FAL_KEY": FAL_KEY,
            "PE_FAL_BASE_URL": fal_url,
            "PE_FAL_QUEUE_URL": fal_url,
            "PE_PROVIDERS": json.dumps({"flux-schnell": ["fal"]}),
            "PE_PROVIDER_MAX_RETRIES": "0",  # `[fail]` fails at once
        }
        for name in ("PE_TEST_FAULT_POINT", "PE_TEST_FAULT_MARKER", "PE_REDIS_URL"):
            self.env.pop(name, None)

    def start(self, fault: FaultPoint | None = None, marker: Path | None = None) -> Server:
        env = dict(self.env)
        if fault is not None and fault is not FaultPoint.PROVIDER:
            assert marker is not None
            path = os.pathsep.join(p for p in (str(FAULTS_DIR), env.get("PYTHONPATH", "")) if p)
            env |= {
                "PYTHONPATH": path,
                "PE_TEST_FAULT_POINT": fault.value,
                "PE_TEST_FAULT_MARKER": str(marker),
            }
        port = free_port()
        log = self.tmp_path / f"serve-{port}-{fault or 'recovery'}.log"
        with open(log, "wb") as handle:
            proc = subprocess.Popen(
                [EXE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=handle,
                start_new_session=True,
            )
        server = Server(proc, f"http://127.0.0.1:{port}", log)
        self.started.append(server)
        # uvicorn answers only once the lifespan (and with it the start-up sweep) has finished.
        wait_until_serving(proc, f"{server.base}/openapi.json", output=server.log_tail)
        return server

    def kill(self, server: Server) -> None:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=30)

    def stop_all(self) -> None:
        for server in self.started:
            if server.proc.poll() is None:
                os.killpg(server.proc.pid, signal.SIGTERM)
        for server in self.started:
            reap(server.proc, group=True)


@dataclass
class Request:
    """One POST /generate-image on a thread of its own: the server under test never answers it."""

    url: str
    key: str
    prompt: str
    idempotency_key: str
    response: httpx.Response | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        try:
            self.response = httpx.post(
                f"{self.url}/api/v1/ai/generate-image",
                headers={"Authorization": f"Bearer {self.key}", "Idempotency-Key": self.idempotency_key},
                json={"prompt": self.prompt, "model": "flux-schnell"},
                timeout=60,
            )
        except BaseException as exc:
            self.error = exc

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


# -- the database --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    org_id: str
    key: str


async def seed(database_url: str, count: int) -> list[Tenant]:
    """Migrate, then `count` organisations with a key each. Even ones pay from the growth plan's
    monthly allowance, odd ones (plan `none`) from a credit pack, so refunds to both buckets are seen."""
    db = Database(database_url)
    try:
        await migrate.upgrade(db)
        now = utcnow()
        tenants = []
        for i in range(count):
            plan = Plan.GROWTH if i % 2 == 0 else Plan.NONE
            async with db.write() as session:
                org = await orgs.create_org(session, name=f"Crash {i}", plan=plan, now=now)
                _, secret = await key_service.create_key(
                    session,
                    secret_key=SECRET.encode(),
                    org_id=org.id,
                    name="crash",
                    scopes=frozenset(Scope),
                    now=now,
                )
            if plan is Plan.NONE:
                await db.run(functools.partial(_grant_pack, org_id=org.id, now=now))
            tenants.append(Tenant(org.id, secret))
        return tenants
    finally:
        await db.dispose()


def _grant_pack(conn: Connection, *, org_id: str, now: datetime) -> None:
    credits.grant_pack(conn, org_id=org_id, amount=7, now=now)


class Probe(processes.Probe):
    """The servers' database, read by the test."""

    def generation(self, org_id: str) -> Any:
        rows = self.rows(
            select(
                Generation.id,
                Generation.status,
                Generation.credits,
                Generation.allowance_part,
                Generation.bonus_part,
                Generation.media_id,
                Generation.error,
                Generation.deadline_at,
            ).where(Generation.org_id == org_id)
        )
        assert len(rows) == 1, f"organisation {org_id} has {len(rows)} generations, expected 1"
        return rows[0]

    def ledger(self, org_id: str) -> list[Any]:
        return self.rows(
            select(
                CreditLedgerEntry.kind,
                CreditLedgerEntry.amount,
                CreditLedgerEntry.allowance_delta,
                CreditLedgerEntry.bonus_delta,
                CreditLedgerEntry.generation_id,
            )
            .where(CreditLedgerEntry.org_id == org_id)
            .order_by(CreditLedgerEntry.id)
        )

    def account(self, org_id: str) -> tuple[int, int, int]:
        """(allowance, allowance_used, bonus)."""
        row = self.rows(
            select(CreditAccount.allowance, CreditAccount.allowance_used, CreditAccount.bonus).where(
                CreditAccount.org_id == org_id
            )
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    def media(self, org_id: str) -> list[Any]:
        return self.rows(
            select(
                Media.id, Media.storage_key, Media.thumbnail_key, Media.size, Media.sha256, Media.source
            ).where(Media.org_id == org_id)
        )

    def storage_used(self, org_id: str) -> int:
        return int(self.rows(select(Organization.storage_used_bytes).where(Organization.id == org_id))[0][0])

    def all_media_keys(self) -> set[str]:
        keys: set[str] = set()
        for storage_key, thumbnail_key in self.rows(select(Media.storage_key, Media.thumbnail_key)):
            keys.add(storage_key)
            if thumbnail_key:
                keys.add(thumbnail_key)
        return keys



def stored_files(media_root: Path) -> set[str]:
    """Every file under the media folder, as storage keys (`media/med_…/original.webp`)."""
    if not media_root.exists():
        return set()
    return {path.relative_to(media_root).as_posix() for path in media_root.rglob("*") if path.is_file()}


def recovery_time(killed_at: float) -> float:
    """The wall-clock time after which a sweep refunds a reservation made before `killed_at`: its
    deadline (reservation + DEADLINE_SECONDS) plus the sweeper's grace, plus a margin for the
    clocks' resolution."""
    return killed_at + DEADLINE_SECONDS + GRACE_SECONDS + 0.25
