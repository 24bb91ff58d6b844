"""The baseline of the serving benchmarks: a bare FastAPI app, written the way the tutorials write one.

It is run as one uvicorn process with uvicorn's defaults (uvloop and httptools when installed, its access log
on), beside the service, on the same machine, in the same run: every serving figure of the service is a ratio
against this app's figure for the same request. Nothing here is clever on purpose:

- ``GET /ping`` answers a constant: the framework's floor.
- ``POST /predict`` takes ``{"pixels": [784 numbers]}`` as a pydantic model (each number parsed and validated
  one by one), and runs the TensorFlow.js tutorial's CNN on the event loop, one request at a time.
- ``POST /predict/png`` takes one picture as a multipart ``file`` part, resizes it to 28x28 with Pillow, and
  runs the same forward pass on the event loop.
- ``POST /predict/batch`` takes ``{"instances": [{"image": base64 PNG}, ...]}`` and runs them as one batch.

The network is the tutorial's (conv 5x5x8, max-pool, conv 5x5x16, max-pool, dense 10) in plain PyTorch, with
random weights: the speed of a forward pass does not depend on them. ``BASELINE_TORCH_THREADS`` sets torch's
threads (the bench gives it the service's ``MNIST_INFERENCE_THREADS``, so that a ratio measures the serving stack,
not a thread setting); unset, torch's default (one per core).

    uvicorn bench.baseline_app:app --port 8001
"""

import base64
import io
import os

import numpy as np
import torch
from fastapi import FastAPI, UploadFile
from PIL import Image
from pydantic import BaseModel
from torch import nn

app = FastAPI(title="bare FastAPI baseline")

if os.environ.get("BASELINE_TORCH_THREADS"):
    torch.set_num_threads(int(os.environ["BASELINE_TORCH_THREADS"]))

network = nn.Sequential(
    nn.Conv2d(1, 8, 5),
    nn.ReLU(),
    nn.MaxPool2d(2, 2),
    nn.Conv2d(8, 16, 5),
    nn.ReLU(),
    nn.MaxPool2d(2, 2),
    nn.Flatten(),
    nn.Linear(16 * 4 * 4, 10),
).eval()


class Pixels(BaseModel):
    pixels: list[float]


class Instance(BaseModel):
    image: str


class Batch(BaseModel):
    instances: list[Instance]


def answer(images: torch.Tensor) -> dict:
    with torch.inference_mode():
        probabilities = torch.softmax(network(images), dim=1)
    return {
        "predictions": [
            {"digit": int(p.argmax()), "confidence": float(p.max()), "probabilities": p.tolist()} for p in probabilities
        ]
    }


def picture(data: bytes) -> torch.Tensor:
    image = Image.open(io.BytesIO(data)).convert("L").resize((28, 28))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)


@app.get("/ping")
async def ping() -> dict:
    return {"status": "ok"}


@app.post("/predict")
async def predict(body: Pixels) -> dict:
    images = torch.tensor(body.pixels, dtype=torch.float32).reshape(1, 1, 28, 28) / 255
    return answer(images)


@app.post("/predict/png")
async def predict_png(file: UploadFile) -> dict:
    return answer(picture(await file.read()).reshape(1, 1, 28, 28))


@app.post("/predict/batch")
async def predict_batch(body: Batch) -> dict:
    images = torch.stack([picture(base64.b64decode(instance.image)) for instance in body.instances])
    return answer(images.unsqueeze(1))
