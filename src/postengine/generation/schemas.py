from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postengine.generation.models import AspectRatio, ImageModel

MAX_PROMPT_CHARS = 2_000
INVALID_MODEL = "Invalid model. Must be one of: " + ", ".join(m.value for m in ImageModel)
INVALID_RATIO = "Invalid aspect ratio. Must be one of: " + ", ".join(r.value for r in AspectRatio)


class GenerateImageRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are ignored (API.md §1.4)

    prompt: str = Field(
        description="Text description of the image to generate (1–2,000 characters after trimming).",
        examples=["A flat-lay photo of a coffee cup, notebook, and succulent on a marble desk"],
    )
    model: ImageModel = Field(description="AI model to use.")
    aspect_ratio: AspectRatio = Field(default=AspectRatio.SQUARE, description="Image aspect ratio.")

    @field_validator("prompt", mode="after")
    @classmethod
    def _prompt(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("prompt must not be empty")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL, and no prompt needs one
            raise ValueError("prompt must not contain NUL characters")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt must be at most 2,000 characters (this one has {len(value):,})")
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        if not isinstance(value, str) or value not in ImageModel.__members__.values():
            raise ValueError(INVALID_MODEL)
        return value

    @field_validator("aspect_ratio", mode="before")
    @classmethod
    def _ratio(cls, value: Any) -> Any:
        if value is None:
            return AspectRatio.SQUARE
        if not isinstance(value, str) or value not in AspectRatio.__members__.values():
            raise ValueError(INVALID_RATIO)
        return value


class GeneratedImage(BaseModel):
    media_id: str
    model: ImageModel
    aspect_ratio: AspectRatio
    width: int
    height: int
    credits_used: int
    credits_remaining: int
    status: str = Field(examples=["completed"])
    image_url: str
    media_ids: list[str]
    created_at: str
    message: str
