"""API.md §1: the envelope, request ids, error codes, body limits, OpenAPI."""

import re

import httpx
import pytest

REQ_ID = re.compile(r"req_[0-9a-f]{24}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GEN = "/api/v1/ai/generate-image"


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"data", "error", "meta"}
    assert REQ_ID.fullmatch(body["meta"]["request_id"])
    assert TIMESTAMP.fullmatch(body["meta"]["timestamp"])
    assert response.headers["x-request-id"] == body["meta"]["request_id"]
    if code is None:
        assert body["error"] is None
    else:
        assert body["data"] is None
        assert body["error"]["code"] == code
        assert body["error"]["retryable"] is (status in {429, 500, 502, 503, 504})
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert isinstance(body["error"]["details"], dict)
    return body


async def test_unknown_route_is_enveloped_404(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/api/v1/nope"), 404, "not_found")


async def test_wrong_method_is_enveloped_405(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    assert_envelope(await client.get(GEN, headers=tenant.headers), 405, "method_not_allowed")


async def test_request_ids_are_unique_and_client_id_is_not_reused(client: httpx.AsyncClient) -> None:
    a = await client.get("/api/v1/me", headers={"X-Request-Id": "client-chosen-id"})
    b = await client.get("/api/v1/me")
    assert a.headers["x-request-id"] != "client-chosen-id"
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"", "invalid_json"),
        (b'"a string"', "invalid_json"),
    ],
)
async def test_invalid_json(client: httpx.AsyncClient, make_tenant, body: bytes, code: str) -> None:
    tenant = await make_tenant()
    response = await client.post(GEN, content=body, headers={**tenant.headers, "Content-Type": "application/json"})
    assert_envelope(response, 400, code)


async def test_form_body_is_415(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    response = await client.post(GEN, data={"prompt": "x"}, headers=tenant.headers)
    assert_envelope(response, 415, "unsupported_media_type")


async def test_body_over_one_mib_is_413(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()
    big = b'{"prompt": "' + b"a" * (1024 * 1024) + b'", "model": "flux-schnell"}'
    response = await client.post(GEN, content=big, headers={**tenant.headers, "Content-Type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")


async def test_chunked_body_over_limit_is_413(client: httpx.AsyncClient, make_tenant) -> None:
    tenant = await make_tenant()

    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post(GEN, content=chunks(), headers={**tenant.headers, "Content-Type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")


async def test_openapi_documents_errors_and_no_422(client: httpx.AsyncClient) -> None:
    """FastAPI's own 422 (validation errors are 400s here) is nowhere; the only 422 is the declared
    `idempotency_key_mismatch` of the endpoints that take an Idempotency-Key."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/v1/ai/generate-image"]["post"]
    assert {"400", "401", "402", "403", "429", "500"} <= set(operation["responses"])
    assert "idempotency_key_mismatch" in operation["responses"]["422"]["description"]
    with_422 = {
        path for path, item in schema["paths"].items() for op in item.values() if "422" in op.get("responses", {})
    }
    assert with_422 == {"/api/v1/ai/generate-image", "/api/v1/posts", "/api/v1/media/upload"}
    assert "HTTPValidationError" not in str(schema)
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"prompt", "model"}
    assert "flux-schnell" in str(body["properties"]["model"])
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_openapi_documents_the_list_queries(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, names in [
        ("/api/v1/posts", {"status", "platform", "account_id", "scheduled_after", "scheduled_before", "search",
                           "sort", "order", "limit", "offset"}),
        ("/api/v1/media", {"type", "source", "status", "limit", "offset"}),
    ]:
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert set(parameters) == names
        assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
        assert parameters["limit"]["schema"]["maximum"] == 100
        assert parameters["offset"]["schema"]["minimum"] == 0
    posts = {p["name"]: p for p in schema["paths"]["/api/v1/posts"]["get"]["parameters"]}
    assert posts["sort"]["schema"]["enum"] == ["created_at", "scheduled_for"]
