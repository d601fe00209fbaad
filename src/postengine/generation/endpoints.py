from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from postengine.auth.dependencies import AiCaller
from postengine.context import get_ctx
from postengine.generation import service
from postengine.generation.schemas import GeneratedImage, GenerateImageRequest
from postengine.idempotency import Recorder
from postengine.idempotency import service as idempotency
from postengine.kit.body import read_json
from postengine.kit.timing import ServerTiming
from postengine.openapi import body_schema, envelope_of, error_responses, idempotent

router = APIRouter(tags=["AI Generation"])


@router.post(
    "/ai/generate-image",
    summary="Generate an image from a text prompt",
    description="Generates an image synchronously, saves it to the media library and charges AI credits. "
    "Requires the `ai` scope.",
    response_model=envelope_of(GeneratedImage),
    responses=error_responses(400, 401, 402, 403, 409, 413, 415, 422, 429, 500, 503),
    openapi_extra=idempotent(body_schema(GenerateImageRequest), 200),
)
async def generate_image(request: Request, caller: AiCaller) -> Response:
    timing = ServerTiming()

    async def run(record: Recorder | None) -> tuple[int, Any]:
        body = await read_json(request, GenerateImageRequest)
        result = await service.generate_image(get_ctx(request), caller, body, timing, record)
        return 200, result.model_dump(mode="json")

    with timing.measure("total"):
        response = await idempotency.respond(request, caller, run)
    response.headers["Server-Timing"] = timing.header()
    return response
