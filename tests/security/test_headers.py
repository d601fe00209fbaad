"""Security headers (OWASP Secure Headers Project) on every response, added by the outermost
middleware: `nosniff`, `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer` everywhere; for
JSON (the API, its errors, the probes) also `Content-Security-Policy: default-src 'none';
frame-ancestors 'none'` and `Cache-Control: no-store`. Swagger UI (`/docs`) keeps working (no CSP
on its HTML) and `/cdn` keeps its immutable caching."""

import httpx

from postengine.media.cdn import IMMUTABLE
from tests.api.test_conventions import assert_envelope
from tests.media import files
from tests.media.flow import BASE, put_bytes, start_upload, upload
from tests.security.helpers import AUTHENTICATED, PUBLIC, concrete, route_inventory, serving

CSP = "default-src 'none'; frame-ancestors 'none'"


def assert_everywhere(response: httpx.Response) -> None:
    """The headers every response has, each exactly once."""
    where = f"{response.request.method} {response.request.url.path} → {response.status_code}"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], where
    assert response.headers.get_list("x-frame-options") == ["DENY"], where
    assert response.headers.get_list("referrer-policy") == ["no-referrer"], where
    assert len(response.headers.get_list("x-request-id")) == 1, where


def assert_api_json(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} → {response.status_code}"
    assert_everywhere(response)
    assert response.headers["content-type"].startswith("application/json"), where
    assert response.headers.get_list("content-security-policy") == [CSP], where
    assert response.headers.get_list("cache-control") == ["no-store"], where


async def test_every_route_carries_them(settings, clock, make_tenant) -> None:
    """Every route the app serves (read from the app, as in the access matrix), called as a client
    would: authenticated ones with a key that has every scope, public ones without."""
    async with serving(settings, clock) as (app, client):
        tenant = await make_tenant()
        called = 0
        for method, path in sorted(route_inventory(app)):
            headers = tenant.headers if (method, path) in AUTHENTICATED else {}
            assert (method, path) in AUTHENTICATED or (method, path) in PUBLIC
            body = {} if method in {"POST", "PATCH"} else None
            response = await client.request(method, concrete(path), headers=headers, json=body)
            assert_everywhere(response)
            if response.headers.get("content-type", "").startswith("application/json"):
                assert_api_json(response)
            called += 1
        assert called == len(AUTHENTICATED) + len(PUBLIC)


async def test_api_responses_and_every_kind_of_error(settings, clock, make_tenant) -> None:
    async with serving(settings, clock) as (_, client):
        tenant = await make_tenant()
        gen = "/api/v1/ai/generate-image"
        cases = [
            (await client.get("/api/v1/me", headers=tenant.headers), 200),
            (await client.get("/api/v1/me"), 401),
            (await client.post(gen, headers=tenant.headers, json={"prompt": "x", "model": "nope"}), 400),
            (await client.get("/api/v1/media/med_nope", headers=tenant.headers), 404),
            (await client.get("/api/v1/no-such-route"), 404),
            (await client.get("/no-such-route-outside-the-api"), 404),
            (await client.put("/api/v1/me", headers=tenant.headers), 405),
            # 413 from the middleware itself (no app, no exception handler involved).
            (
                await client.post(
                    gen,
                    headers={**tenant.headers, "Content-Type": "application/json"},
                    content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                ),
                413,
            ),
            # The last-resort 500 of the middleware (a bug in a provider adapter).
            (
                await client.post(
                    gen, headers=tenant.headers, json={"prompt": "a bug", "model": "flux-schnell"}
                ),
                500,
            ),
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            assert_api_json(response)
        assert_envelope(cases[0][0], 200)


async def test_cdn_keeps_its_caching_and_gets_no_csp(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    media = await upload(client, tenant.headers, files.png())
    path = media["url"].removeprefix(BASE)
    image = await client.get(path)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert_everywhere(image)
    assert image.headers.get_list("cache-control") == [IMMUTABLE]
    # A CSP on an image stops some browsers from showing it when it is opened directly.
    assert "content-security-policy" not in image.headers
    head = await client.head(path)
    assert_everywhere(head)
    assert head.headers.get_list("cache-control") == [IMMUTABLE]
    unchanged = await client.get(path, headers={"If-None-Match": image.headers["etag"]})
    assert unchanged.status_code == 304
    assert_everywhere(unchanged)
    assert unchanged.headers.get_list("cache-control") == [IMMUTABLE]
    # A missing file is an API error like any other: not cached, not renderable.
    missing = await client.get(f"/cdn/media/{media['id']}/nothing.webp")
    assert missing.status_code == 404
    assert_api_json(missing)


async def test_probes_openapi_and_uploads(client: httpx.AsyncClient, make_tenant) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert_api_json(response)
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert_everywhere(metrics)
    assert metrics.headers.get_list("cache-control") == ["no-store"]

    tenant = await make_tenant()
    refused = await client.put(concrete("/uploads/{media_id}"), content=b"x")
    assert refused.status_code == 403
    assert_api_json(refused)
    data = files.png()
    ticket = await start_upload(client, tenant.headers, data)
    received = await put_bytes(client, ticket["upload_url"], data)
    assert received.status_code == 200
    assert_api_json(received)


async def test_swagger_ui_still_works(client: httpx.AsyncClient) -> None:
    """/docs loads Swagger UI's script and styles from a CDN and runs an inline script: a
    `default-src 'none'` policy would leave it blank, so its HTML gets none."""
    docs = await client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert_everywhere(docs)
    assert "content-security-policy" not in docs.headers
    assert "swagger-ui" in docs.text and "/openapi.json" in docs.text
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert_everywhere(redirect)
    assert "content-security-policy" not in redirect.headers
    # What the page then fetches is JSON like any other.
    assert_api_json(await client.get("/openapi.json"))
