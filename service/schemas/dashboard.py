"""The dashboard's helpers: the presets its form offers, and MNIST test digits for its gallery."""

from pydantic import BaseModel, Field

from service.domain.mnist import IMAGE_SIDE
from service.domain.training_config import TrainingConfig


class PresetList(BaseModel):
    presets: dict[str, TrainingConfig] = Field(description="Each preset's full configuration, by name.")


class Sample(BaseModel):
    index: int = Field(description="Position in the 10,000-image MNIST test set.")
    label: int = Field(ge=0, le=9)
    pixels: list[int] = Field(
        min_length=IMAGE_SIDE**2, max_length=IMAGE_SIDE**2, description="28 rows of 28 values 0..255, row by row."
    )


class SampleList(BaseModel):
    samples: list[Sample]
