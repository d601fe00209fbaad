"""The four public model names, their credit costs and output sizes (API.md §4.2)."""

from dataclasses import dataclass
from enum import StrEnum


class ImageModel(StrEnum):
    NANO_BANANA_PRO = "nano-banana-pro"
    IDEOGRAM_V2 = "ideogram-v2"
    GEMINI_3_PRO = "gemini-3-pro"
    FLUX_SCHNELL = "flux-schnell"


class AspectRatio(StrEnum):
    SQUARE = "1:1"
    WIDE = "16:9"
    TALL = "9:16"
    LANDSCAPE_4_3 = "4:3"
    PORTRAIT_3_4 = "3:4"
    PORTRAIT_4_5 = "4:5"
    LANDSCAPE_5_4 = "5:4"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    model: ImageModel
    credits: int
    long_side: int


MODEL_SPECS: dict[ImageModel, ModelSpec] = {
    ImageModel.NANO_BANANA_PRO: ModelSpec(ImageModel.NANO_BANANA_PRO, 15, 2048),
    ImageModel.IDEOGRAM_V2: ModelSpec(ImageModel.IDEOGRAM_V2, 8, 1024),
    ImageModel.GEMINI_3_PRO: ModelSpec(ImageModel.GEMINI_3_PRO, 5, 1536),
    ImageModel.FLUX_SCHNELL: ModelSpec(ImageModel.FLUX_SCHNELL, 1, 1024),
}


def output_size(model: ImageModel, ratio: AspectRatio) -> tuple[int, int]:
    """(width, height): the long side is the model's maximum, the short side `long × short/long`
    rounded to the nearest multiple of 8 (16:9 at 2048 → 2048×1152; 4:5 at 1024 → 816×1024)."""
    long_side = MODEL_SPECS[model].long_side
    a, b = (int(part) for part in ratio.value.split(":"))
    if a == b:
        return long_side, long_side
    short = round(long_side * min(a, b) / max(a, b) / 8) * 8
    return (long_side, short) if a > b else (short, long_side)
