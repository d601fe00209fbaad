from fastapi import APIRouter
from starlette.requests import Request

from postengine.auth.dependencies import AiCaller
from postengine.context import get_ctx
from postengine.envelope import EnvelopeResponse, ok
from postengine.generation import service
from postengine.generation.schemas import GeneratedImage, GenerateImageRequest
from postengine.kit.body import read_json
from postengine.kit.timing import ServerTiming
from postengine.openapi import body_schema, envelope_of, error_responses

router = APIRouter(tags=["AI Generation"])


@router.post(
    "/ai/generate-image",
    summary="Generate an image from a text prompt",
    description="Generates an image synchronously, saves it to the media library and charges AI credits. "
    "Requires the `ai` scope.",
    response_model=envelope_of(GeneratedImage),
    responses=error_responses(400, 401, 402, 403, 413, 415, 429, 500, 503),
    openapi_extra=body_schema(GenerateImageRequest),
)
async def generate_image(request: Request, caller: AiCaller) -> EnvelopeResponse:
    timing = ServerTiming()
    with timing.measure("total"):
        body = await read_json(request, GenerateImageRequest)
        result = await service.generate_image(get_ctx(request), caller, body, timing)
    response = ok(request, result.model_dump(mode="json"))
    response.headers["Server-Timing"] = timing.header()
    return response
