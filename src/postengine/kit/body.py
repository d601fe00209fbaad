"""Reading a JSON request body into a pydantic model, with the API's errors (API.md §1.4).

Endpoints read their body through this *after* authentication, scope and rate-limit checks, so the
documented order of checks holds (a bad key with a bad body is a 401, not a 400).
"""

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from postengine.errors import InvalidJson, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "float_type": "a number",
}


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as `[{"field": "aspect_ratio", "message": "…"}]`, in plain sentences."""
    errors = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "body"
        kind = err["type"]
        if kind == "missing":
            message = f"{field} is required"
        elif kind in _TYPE_WORDS:
            message = f"{field} must be {_TYPE_WORDS[kind]}"
        elif kind == "value_error":
            message = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        else:
            message = f"{field}: {err['msg']}"
        errors.append({"field": field, "message": message})
    return errors


def parse_model(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None


async def read_json(request: Request, model: type[M]) -> M:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media_type!r}. Send the body as JSON with Content-Type: application/json."
        )
    raw = await request.body()
    if not raw.strip():
        raise InvalidJson("The request body is empty. Send a JSON object.")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The request body is not valid JSON: {exc.args[0]}.") from None
    if not isinstance(payload, dict):
        raise InvalidJson("The request body must be a JSON object.")
    return parse_model(model, payload)
