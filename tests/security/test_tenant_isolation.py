"""API.md §1.2 and DESIGN.md §4 (tenancy): another organisation's object is a 404, never a 403,
for every object type and every verb, and reading or trying to change it changes nothing.

Organisation A owns one of each object: an uploaded media item (upload → PUT → complete), an
AI-generated one (`generate-image`; a generation has no endpoint of its own, it surfaces as the media
item with `source: "ai"`, so it is covered through that item), an upload still waiting for its bytes
(the upload URL), a sandbox social account and a scheduled post using them. Organisation B, with
every scope, tries everything on each of them. B's answer for A's object must be the answer for an id
that exists nowhere (same status, code and message, up to the id itself), so B cannot even learn that
the object exists.
"""

import itertools
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.accounts.helpers import connect
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import BASE, put_bytes, start_upload, upload
from tests.security.helpers import add_key

GHOST_MEDIA = "med_" + "0" * 24
GHOST_POST = "00000000-0000-4000-8000-000000000000"
GHOST_ACCOUNT = 999_999


def _later(clock, seconds: float) -> str:
    return datetime.fromtimestamp(clock.time() + seconds, UTC).isoformat().replace("+00:00", "Z")


async def _org_a(
    client: httpx.AsyncClient, db, clock, headers: dict[str, str], org_id: str
) -> dict[str, Any]:
    uploaded = (await upload(client, headers, files.png(), filename="a-secret-plan.png"))["id"]
    pending = await start_upload(client, headers, files.png(40, 30), filename="a-pending.png")
    generated = assert_envelope(
        await client.post(
            "/api/v1/ai/generate-image",
            headers=headers,
            json={"prompt": "A's product shot", "model": "flux-schnell"},
        ),
        200,
    )["data"]["media_id"]
    account = (await connect(db, org_id, clock, platform="x", name="@org_a_brand")).id
    post = assert_envelope(
        await client.post(
            "/api/v1/posts",
            headers=headers,
            json={
                "content": "A's launch",
                "account_ids": [account],
                "media_ids": [uploaded, generated],
                "scheduled_at": _later(clock, 3600),
            },
        ),
        201,
    )["data"]["id"]
    return {
        "uploaded": uploaded,
        "generated": generated,
        "pending": pending["media_id"],
        "pending_url": pending["upload_url"],
        "account": account,
        "post": post,
    }


async def _snapshot(client: httpx.AsyncClient, headers: dict[str, str], a: dict[str, Any]) -> dict[str, Any]:
    """Everything A can see of its objects, minus the request metadata."""
    paths = [
        *(f"/api/v1/media/{a[k]}" for k in ("uploaded", "generated", "pending")),
        f"/api/v1/posts/{a['post']}",
        f"/api/v1/posts/{a['post']}/results",
        f"/api/v1/accounts/{a['account']}",
        f"/api/v1/accounts/{a['account']}/health",
        "/api/v1/media?limit=100",
        "/api/v1/posts?limit=100",
        "/api/v1/accounts",
    ]
    return {path: assert_envelope(await client.get(path, headers=headers), 200)["data"] for path in paths}


def _normalised(response: httpx.Response, tried: object) -> dict[str, Any]:
    error = response.json()["error"]
    text = json.dumps(error).replace(str(tried), "<id>")
    out: dict[str, Any] = {"status": response.status_code, **json.loads(text)}
    return out


async def test_another_organisations_objects_are_404_for_every_verb(
    client: httpx.AsyncClient, make_tenant, db, clock
) -> None:
    a_tenant = await make_tenant(name="Org A")
    b_tenant = await make_tenant(name="Org B")
    a = await _org_a(client, db, clock, a_tenant.headers, a_tenant.org_id)
    before = await _snapshot(client, a_tenant.headers, a)
    # B's keys, used in turn: this test makes more requests than one key's minute allows.
    b_keys = [b_tenant.secret] + [
        (await add_key(db, clock, b_tenant.org_id, name=f"b{i}"))[1] for i in range(3)
    ]
    rotation = itertools.cycle(b_keys)

    async def as_b(method: str, path: str, body: Any = None) -> httpx.Response:
        return await client.request(
            method, path, headers={"Authorization": f"Bearer {next(rotation)}"}, json=body
        )

    attempts: list[tuple[str, str, object, object, Any]] = []  # method, path template, A's id, ghost, body
    for key in ("uploaded", "generated", "pending"):
        for method, template, body in [
            ("GET", "/api/v1/media/{}", None),
            ("DELETE", "/api/v1/media/{}", None),
            ("DELETE", "/api/v1/media/{}?force=true", None),
            ("POST", "/api/v1/media/{}/complete", {}),
        ]:
            attempts.append((method, template, a[key], GHOST_MEDIA, body))
    for method, template, body in [
        ("GET", "/api/v1/posts/{}", None),
        ("PATCH", "/api/v1/posts/{}", {"content": "hijacked"}),
        ("PATCH", "/api/v1/posts/{}", {"account_ids": [a["account"]]}),
        ("DELETE", "/api/v1/posts/{}", None),
        ("GET", "/api/v1/posts/{}/results", None),
        ("POST", "/api/v1/posts/{}/retry", {}),
    ]:
        attempts.append((method, template, a["post"], GHOST_POST, body))
    for template in ("/api/v1/accounts/{}", "/api/v1/accounts/{}/health"):
        attempts.append(("GET", template, a["account"], GHOST_ACCOUNT, None))

    for method, template, theirs, ghost, body in attempts:
        response = await as_b(method, template.format(theirs), body)
        assert_envelope(response, 404, "not_found")
        nowhere = await as_b(method, template.format(ghost), body)
        assert _normalised(response, theirs) == _normalised(nowhere, ghost), (method, template)

    # Media has no PATCH: the same 405 for A's id and for no id at all (no route, nothing looked up).
    for key in ("uploaded", "pending"):
        patched = await as_b("PATCH", f"/api/v1/media/{a[key]}", {"filename": "x"})
        assert_envelope(patched, 405, "method_not_allowed")
        assert _normalised(patched, a[key]) == _normalised(
            await as_b("PATCH", f"/api/v1/media/{GHOST_MEDIA}", {"filename": "x"}), GHOST_MEDIA
        )

    # Referencing A's objects from B's own posts: 404 naming only the ids B sent.
    b_account = (await connect(db, b_tenant.org_id, clock, platform="x", name="@org_b_brand")).id
    for body, missing in [
        ({"content": "mine", "account_ids": [a["account"]]}, {"account_ids": [a["account"]]}),
        ({"content": "mine", "account_ids": [b_account, a["account"]]}, {"account_ids": [a["account"]]}),
        (
            {"content": "mine", "account_ids": [b_account], "media_ids": [a["uploaded"]]},
            {"media_ids": [a["uploaded"]]},
        ),
        (
            {"content": "mine", "account_ids": [b_account], "media_ids": [a["generated"]]},
            {"media_ids": [a["generated"]]},
        ),
        (
            {"content": "mine", "account_ids": [b_account], "media_ids": [a["pending"]]},
            {"media_ids": [a["pending"]]},
        ),
        ({"content": "mine", "draft": True, "media_ids": [a["uploaded"]]}, {"media_ids": [a["uploaded"]]}),
    ]:
        refused = assert_envelope(await as_b("POST", "/api/v1/posts", body), 404, "not_found")
        assert refused["error"]["details"] == missing
    draft = assert_envelope(
        await as_b("POST", "/api/v1/posts", {"content": "B's draft", "draft": True}), 201
    )["data"]
    for change in (
        {"media_ids": [a["uploaded"]]},
        {"account_ids": [a["account"]]},
        {"media_ids": [a["generated"]]},
    ):
        assert_envelope(await as_b("PATCH", f"/api/v1/posts/{draft['id']}", change), 404, "not_found")
    after_draft = assert_envelope(await as_b("GET", f"/api/v1/posts/{draft['id']}"), 200)["data"]
    assert (after_draft["media_ids"], after_draft["account_ids"]) == ([], [])
    assert after_draft["updated_at"] == draft["updated_at"]

    # B's lists (and their filters, including one naming A's account) show nothing of A's.
    a_ids = [a[k] for k in ("uploaded", "generated", "pending", "post")]
    for path in [
        "/api/v1/media?limit=100",
        "/api/v1/media?source=ai",
        "/api/v1/media?status=uploading",
        "/api/v1/posts?limit=100",
        f"/api/v1/posts?account_id={a['account']}",
        "/api/v1/posts?search=launch",
        "/api/v1/accounts",
    ]:
        listed = assert_envelope(await as_b("GET", path), 200)["data"]
        text = json.dumps(listed)
        assert not [i for i in a_ids if i in text], path
        if path == "/api/v1/accounts":
            assert listed["account_ids"] == [b_account]
    assert (
        assert_envelope(await as_b("GET", f"/api/v1/posts?account_id={a['account']}"), 200)["data"][
            "pagination"
        ]["total"]
        == 0
    )

    # Credits are the organisation's: A's generation cost B nothing.
    b_credits = assert_envelope(await as_b("GET", "/api/v1/me"), 200)["data"]["quota"]["ai_credits"]
    assert b_credits["used"] == 0

    # The upload URL: the signature is bound to its media id. B's own signed URL, pointed at A's
    # waiting upload, is refused exactly like one pointed at an id that does not exist (the PUT
    # has no API key, so there is no organisation to answer 404 to: the signature is what fails).
    b_ticket = await start_upload(client, {"Authorization": f"Bearer {next(rotation)}"}, files.png(40, 30))
    query = parse_qs(urlsplit(b_ticket["upload_url"]).query)
    forged = f"?expires={query['expires'][0]}&signature={query['signature'][0]}"
    onto_a = await client.put(f"/uploads/{a['pending']}{forged}", content=files.png(40, 30))
    onto_ghost = await client.put(f"/uploads/{GHOST_MEDIA}{forged}", content=files.png(40, 30))
    assert_envelope(onto_a, 403, "invalid_signature")
    assert _normalised(onto_a, a["pending"]) == _normalised(onto_ghost, GHOST_MEDIA)
    # A's own signature on another of A's ids (the uploaded one) is refused too.
    a_query = urlsplit(a["pending_url"]).query
    assert_envelope(
        await client.put(f"/uploads/{a['uploaded']}?{a_query}", content=b"x"), 403, "invalid_signature"
    )

    # Nothing of A's changed.
    assert await _snapshot(client, a_tenant.headers, a) == before
    assert before[f"/api/v1/media/{a['pending']}"]["status"] == "uploading"
    a_credits = assert_envelope(await client.get("/api/v1/me", headers=a_tenant.headers), 200)["data"]
    assert a_credits["quota"]["ai_credits"]["used"] == 1
    # And A's waiting upload still takes A's bytes through A's URL: B's attempts did not spoil it.
    assert_envelope(await put_bytes(client, a["pending_url"], files.png(40, 30)), 200)
    assert a["pending_url"].startswith(BASE)
