"""schemathesis over the whole OpenAPI schema (issue 6): nothing a client sends causes a 5xx, a
response that does not match its declared schema, an undeclared status code or content type, or a
response header that contradicts its declaration.

Against the ASGI app (its lifespan running), with a valid all-scopes key and plenty of credits, on
SQLite and PostgreSQL:
- every operation on its own: schemathesis's coverage cases (boundary and invalid values: wrong
  types, huge numbers, odd path parameters, missing, empty or non-JSON bodies, wrong content
  types, unexpected methods), then Hypothesis-generated positive and negative data;
- stateful: scenarios that follow the schema's OpenAPI links (`openapi.LINKS`), so a post or a
  media item made by one call is read, changed, deleted and read again by the next ones; these
  also check that a created resource can be read (`ensure_resource_availability`) and that a
  deleted one is gone (`use_after_free`).

The cases are driven with Hypothesis directly (`APIOperation.as_strategy`, `iter_coverage_cases`,
`as_state_machine`) rather than through `schema.parametrize()`: schemathesis's pytest integration
for fixture-built schemas does not run on pytest 9 (it writes `Function._nodeid`, gone in pytest 9).

The app clock advances 40 s before each call, so the per-key rate limits (API.md §3) rarely bind
(a 429 is documented anyway). Images come from the offline renderer (no keys, no network).
Generation is derandomized: CI sees the same cases every run.

Not expressible here, and tested elsewhere: the bytes `PUT` to a signed upload URL (its signature
is in the query string of a `POST /media/upload` response, which schemathesis cannot carry over;
it sends unsigned requests, which must be refused as documented; the signed path is
tests/api/test_media_upload.py), `/cdn` and the ops endpoints (not in the schema).
"""

import contextlib
import copy
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from postengine.app import create_app
from postengine.config import Settings
from postengine.db import Database
from postengine.kit.clock import FakeClock
from tests.conftest import Tenant
from tests.posts.helpers import add_account

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free]
STEP_SECONDS = 40  # 90 requests an hour: under every `api` and `posts` window
FUZZ_EXAMPLES = 25  # per operation and generation mode, after the coverage cases
SCENARIOS = 25  # per workflow
HYPOTHESIS = {
    "derandomize": True,
    "deadline": None,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}
VALID_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Links for this test only, on top of the schema's own: a random `POST /posts` body is almost never
# a post that can be created (it needs the caller's account ids, a future `scheduled_at`, …), so
# one root of the posts scenarios creates a scheduled post for the accounts `GET /accounts` lists,
# which the schema's links then read, change, delete and read again.
TEST_LINKS = {
    ("get", "/api/v1/accounts", "200"): {
        "CreatePostForTheseAccounts": {
            "operationId": "create_post_api_v1_posts_post",
            "requestBody": {
                "content": "Fuzzing, scheduled",
                "account_ids": "$response.body#/data/account_ids",
                "scheduled_at": "2100-01-01T00:00:00Z",
            },
            "x-schemathesis": {"merge_body": False},
        }
    }
}
# Each workflow's operations, and one it must reach through a link with a 2xx at least once (so a
# schema change that breaks the links fails here instead of leaving the scenarios shallow).
WORKFLOWS = {
    "posts": (r"^/api/v1/(posts|accounts)", "GET /api/v1/posts/{post_id}"),
    "media": (r"^/api/v1/(media|ai)", "GET /api/v1/media/{media_id}"),
}


@dataclass
class FuzzedApi:
    schema: Any  # schemathesis's OpenApiSchema of the running app
    clock: FakeClock
    headers: dict[str, str]
    calls: Iterator[int] = field(default_factory=itertools.count)

    def headers_for(self, case: Case) -> dict[str, str]:
        """The valid key; and a valid generated `Idempotency-Key` made unique, since generated keys
        repeat (`0`, `00`) across different bodies and would turn most `POST`s into a (documented)
        422 `idempotency_key_mismatch`. Invalid keys are sent as generated."""
        key = (case.headers or {}).get("Idempotency-Key")
        if key is None or not VALID_IDEMPOTENCY_KEY.fullmatch(key):
            return self.headers
        return {**self.headers, "Idempotency-Key": f"{key[:200]}.{next(self.calls)}"}

    def check(self, case: Case) -> None:
        self.clock.advance(STEP_SECONDS)
        case.call_and_validate(headers=self.headers_for(case), checks=CHECKS)


@pytest.fixture
async def fuzz_tenant(make_tenant: Any, db: Database, clock: FakeClock) -> Tenant:
    tenant: Tenant = await make_tenant(bonus=1_000_000)
    for platform in ("x", "linkedin", "facebook"):
        await add_account(db, clock, tenant.org_id, platform)
    return tenant


@pytest.fixture
def api(settings: Settings, clock: FakeClock, fuzz_tenant: Tenant) -> Iterator[FuzzedApi]:
    app = create_app(settings, clock=clock, background=False)
    raw = copy.deepcopy(app.openapi())
    for (method, path, status), links in TEST_LINKS.items():
        raw["paths"][path][method]["responses"][status]["links"].update(links)
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = app  # calls go to the app in process; the first one starts its lifespan
    schema.config.update(headers=fuzz_tenant.headers)
    schema.config.phases.stateful.inference.algorithms = []  # the schema's own links, no guessed ones
    try:
        yield FuzzedApi(schema, clock, fuzz_tenant.headers)
    finally:
        asgi.shutdown_lifespans()  # this test's app is the only one schemathesis started


def test_every_operation_conforms_to_the_schema(api: FuzzedApi) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api.schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        config = api.schema.config.generation_for(operation=operation, phase="coverage")
        for case in api.schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=config
        ):
            try:
                api.check(case)
            except Exception as exc:
                failures.append(f"{operation.label} (coverage): {exc}")
                break  # the first failure of an operation is the one to read

        for mode in GenerationMode:

            @settings(max_examples=FUZZ_EXAMPLES, **HYPOTHESIS)
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Case) -> None:
                api.check(case)

            try:
                fuzz()
            except Unsatisfiable:
                # Only path parameters that are plain strings (or no parameters at all): nothing
                # to make invalid, and the coverage cases already sent odd values there.
                assert mode is GenerationMode.NEGATIVE
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_linked_workflows_conform_to_the_schema(api: FuzzedApi, workflow: str) -> None:
    paths, must_reach = WORKFLOWS[workflow]
    successes: Counter[str] = Counter()
    failures: list[str] = []

    class Workflow(api.schema.include(path_regex=paths).as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": api.headers_for(case)}

        def before_call(self, case: Case) -> None:
            api.clock.advance(STEP_SECONDS)

        def after_call(self, response: Any, case: Case) -> None:
            super().after_call(response, case)
            if 200 <= response.status_code < 300:
                successes[case.operation.label] += 1

        def validate_response(self, response: Any, case: Case, *args: Any, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=STATEFUL_CHECKS, recorder=self.recorder)
            except Exception as exc:
                failures.append(f"{case.operation.label}: {exc}")
                raise

    # Generate only: a scenario cannot be replayed or shrunk against an app whose state it changed.
    stateful = settings(max_examples=SCENARIOS, stateful_step_count=8, phases=[Phase.generate], **HYPOTHESIS)
    # Flaky: Hypothesis saw the same choices lead to a different scenario (the app's state had
    # moved on), or a failure it could not replay; what failed is in `failures` either way.
    with contextlib.suppress(Flaky):
        Workflow.run(settings=stateful)
    assert not failures, "\n\n".join(failures)
    assert successes[must_reach], f"no scenario reached {must_reach} through a link: {dict(successes)}"


async def test_the_schema_links_create_to_get_update_delete(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    ids = {op["operationId"]: (method, path) for path, ops in paths.items() for method, op in ops.items()}

    def links(method: str, path: str, status: str) -> dict[str, tuple[str, str, dict[str, str]]]:
        found = paths[path][method]["responses"][status]["links"]
        return {name: (*ids[link["operationId"]], link["parameters"]) for name, link in found.items()}

    post = "/api/v1/posts/{post_id}"
    by_post_id = {"post_id": "$response.body#/data/post_id"}
    created = links("post", "/api/v1/posts", "201")
    assert created["GetPost"] == ("get", post, by_post_id)
    assert created["UpdatePost"] == ("patch", post, by_post_id)
    assert created["DeletePost"] == ("delete", post, by_post_id)
    assert links("patch", post, "200")["GetPost"] == ("get", post, by_post_id)
    assert links("delete", post, "200")["GetPost"] == ("get", post, by_post_id)
    media = "/api/v1/media/{media_id}"
    by_media_id = {"media_id": "$response.body#/data/media_id"}
    uploaded = links("post", "/api/v1/media/upload", "201")
    assert uploaded["GetMedia"] == ("get", media, by_media_id)
    assert uploaded["DeleteMedia"] == ("delete", media, by_media_id)
    assert uploaded["CompleteUpload"] == ("post", media + "/complete", by_media_id)
    assert links("post", "/api/v1/ai/generate-image", "200")["GetMedia"] == ("get", media, by_media_id)
    assert links("get", "/api/v1/accounts", "200")["GetAccount"] == (
        "get",
        "/api/v1/accounts/{account_id}",
        {"account_id": "$response.body#/data/account_ids/0"},
    )


async def test_the_schema_declares_the_response_headers(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    responses = paths["/api/v1/ai/generate-image"]["post"]["responses"]
    assert responses["200"]["headers"]["X-Request-Id"]["required"] is True
    assert responses["200"]["headers"]["X-RateLimit-Remaining"]["schema"]["type"] == "integer"
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert "X-RateLimit-Limit" not in paths["/uploads/{media_id}"]["put"]["responses"]["200"]["headers"]


async def test_the_schema_keeps_declared_422s_and_drops_fastapis(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "idempotency_key_mismatch" in paths["/api/v1/posts"]["post"]["responses"]["422"]["description"]
    assert "422" not in paths["/api/v1/posts/{post_id}"]["patch"]["responses"]  # FastAPI's own, never sent


# Found by fuzzing; each was a 500 before.


async def test_a_media_id_with_nul_in_a_post_is_a_validation_error(
    client: httpx.AsyncClient, make_tenant: Any, db: Database, clock: FakeClock
) -> None:
    tenant = await make_tenant()
    account = await add_account(db, clock, tenant.org_id, "x")
    body = {"content": "Launch day!", "account_ids": [account], "media_ids": ["med_\x00"]}
    created = await client.post("/api/v1/posts", json=body, headers=tenant.headers)
    assert created.status_code == 400, created.text
    assert created.json()["error"]["code"] == "validation_error"
    assert created.json()["error"]["details"]["errors"][0]["field"] == "media_ids"
    draft = await client.post("/api/v1/posts", json={"content": "x", "draft": True}, headers=tenant.headers)
    post_id = draft.json()["data"]["post_id"]
    patched = await client.patch(
        f"/api/v1/posts/{post_id}", json={"media_ids": ["\x00"]}, headers=tenant.headers
    )
    assert patched.status_code == 400, patched.text
    assert patched.json()["error"]["code"] == "validation_error"


async def test_a_url_whose_host_is_not_valid_idna_is_a_validation_error(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant()
    body = {"url": "https://xn--/launch.png"}
    response = await client.post("/api/v1/media/upload-from-url", json=body, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["errors"] == [
        {"field": "url", "message": "url has an invalid host name"}
    ]
