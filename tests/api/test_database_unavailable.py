"""A database that cannot take the request (no free connection, too many clients, locked) is a 503
`service_unavailable` with `Retry-After`, not a 500; other database faults stay 500s."""

import sqlite3

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from postengine.app import _database_unavailable
from tests.api.test_conventions import assert_envelope


def wrapped(orig: BaseException) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, orig)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
        wrapped(asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")),
        wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        wrapped(ConnectionRefusedError(111, "Connection refused")),
        wrapped(sqlite3.OperationalError("database is locked")),
    ],
)
def test_unavailable(error: Exception) -> None:
    assert _database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, Exception("duplicate key")),  # type: ignore[arg-type]
        wrapped(sqlite3.OperationalError("no such table: posts")),
        wrapped(asyncpg.exceptions.UndefinedColumnError("column x does not exist")),
    ],
)
def test_real_faults_are_not_unavailability(error: Exception) -> None:
    assert not _database_unavailable(error)


async def test_no_connection_is_a_503(client: httpx.AsyncClient, make_tenant, app, monkeypatch) -> None:
    tenant = await make_tenant()
    assert_envelope(await client.get("/api/v1/posts", headers=tenant.headers), 200)

    async def refuse(*args: object, **kwargs: object) -> None:
        raise wrapped(asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"))

    monkeypatch.setattr(app.state.ctx.db, "run_read", refuse)
    response = await client.get("/api/v1/posts?limit=3", headers=tenant.headers)
    body = assert_envelope(response, 503, "service_unavailable")
    assert body["error"]["retryable"] is True
    assert int(response.headers["retry-after"]) >= 1
    assert "too many clients" not in response.text  # no driver message reaches the client
