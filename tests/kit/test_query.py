"""kit.query: query strings validated into a frozen model, cached by the raw bytes."""

from datetime import UTC, datetime
from enum import StrEnum

import pytest
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from postengine.errors import ValidationFailed
from postengine.kit.query import QueryModel


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Listing(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Colour | None = Field(None, alias="type", description="red or blue")
    after: datetime | None = None
    search: str | None = Field(None, max_length=5)
    flag: bool = False
    limit: int = Field(20, ge=1, le=100, description="Items per page.")


def request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": query})


def errors(parser: QueryModel[Listing], query: bytes) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        parser.get(request(query))
    return list(caught.value.body()["details"]["errors"])


def test_values_are_converted_and_defaults_apply() -> None:
    parsed = QueryModel(Listing).get(request(b"type=blue&after=2026-01-02T03:04:05Z&flag=true&search=a%20b"))
    assert parsed.kind is Colour.BLUE
    assert parsed.after == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parsed.flag is True
    assert parsed.search == "a b"
    assert parsed.limit == 20


def test_unknown_names_are_ignored_and_the_last_repeat_wins() -> None:
    parsed = QueryModel(Listing).get(request(b"limit=5&colour=green&limit=7"))
    assert parsed.limit == 7


def test_a_repeated_query_string_is_parsed_once() -> None:
    parser = QueryModel(Listing)
    first = parser.get(request(b"limit=9"))
    assert parser.get(request(b"limit=9")) is first
    assert parser.get(request(b"limit=10")) is not first


def test_every_problem_is_reported_with_its_public_name() -> None:
    found = errors(QueryModel(Listing), b"type=green&limit=0&search=toolong")
    assert [e["field"] for e in found] == ["type", "search", "limit"]
    assert all(e["message"].startswith(f"{e['field']}: ") for e in found)


def test_an_empty_value_is_a_value_not_the_default() -> None:
    assert [e["field"] for e in errors(QueryModel(Listing), b"limit=")] == ["limit"]


def test_failures_are_not_cached() -> None:
    parser = QueryModel(Listing)
    errors(parser, b"limit=0")
    errors(parser, b"limit=0")


def test_the_cache_is_bounded() -> None:
    parser = QueryModel(Listing, max_cached=3)
    for n in range(1, 10):
        parser.get(request(f"limit={n}".encode()))
    assert len(parser._parsed) <= 3


def test_a_model_that_is_not_frozen_is_refused() -> None:
    class Loose(BaseModel):
        limit: int = 1

    with pytest.raises(TypeError):
        QueryModel(Loose)


def test_openapi_parameters_carry_names_constraints_and_enums() -> None:
    parameters = {p["name"]: p for p in QueryModel(Listing).openapi()["parameters"]}
    assert set(parameters) == {"type", "after", "search", "flag", "limit"}
    assert all(p["in"] == "query" and p["required"] is False for p in parameters.values())
    assert parameters["limit"]["schema"]["minimum"] == 1
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert parameters["limit"]["description"] == "Items per page."
    enum_schema = parameters["type"]["schema"]["anyOf"][0]
    assert enum_schema["enum"] == ["red", "blue"]
    assert "$ref" not in str(parameters)
