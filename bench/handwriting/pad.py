"""The ``pad`` set: digits drawn on the dashboard's drawing pad in Debian's headless Chromium by scripted pointer
strokes (tests/browser/draw-digits.mjs, shapes in tests/browser/digit-strokes.mjs), each saved as the PNG that the
pad sends to ``POST /predict``. The dashboard is served by the real API (a process, on an embedded Redis).

The pad sends grey strokes on an opaque canvas as RGBA; they are stored as 8-bit grey PNGs, the same pixels in a
quarter of the bytes (checked here: nothing else is changed)."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.stack import free_port
from service.evaluation.sets import write_labels
from service.launcher.embedded_redis import EmbeddedRedis

BROWSER = Path(__file__).resolve().parents[2] / "tests" / "browser"
PER_DIGIT = 30  # pictures of each digit: each of its 2 to 5 shapes 6 to 15 times


def generate(folder: Path, seed: int, per_digit: int = PER_DIGIT) -> None:
    with tempfile.TemporaryDirectory() as work, EmbeddedRedis(Path(work) / "redis", port=free_port()) as redis_url:
        port = free_port()
        env = {**os.environ, "MNIST_REDIS_URL": redis_url, "MNIST_MODEL_DIR": f"{work}/models"}
        log = Path(work) / "api.log"
        with log.open("wb") as output:
            api = subprocess.Popen(
                [sys.executable, "-m", "service", "api", "--port", str(port)], env=env, stdout=output, stderr=output
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_for(url, api, log)
            drawing = subprocess.run(
                ["node", "draw-digits.mjs"],
                cwd=BROWSER,
                env={
                    **os.environ,
                    "DASHBOARD_URL": url,
                    "OUT": str(folder),
                    "PER_DIGIT": str(per_digit),
                    "SEED": str(seed),
                },
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            api.terminate()
            api.wait(30)
    if drawing.returncode:
        sys.exit(f"draw-digits.mjs failed:\n{drawing.stdout}\n{drawing.stderr}")
    drawn = [json.loads(line) for line in drawing.stdout.splitlines() if line.startswith("{")]
    for picture in drawn:
        _to_gray(folder / picture["file"])
    write_labels(folder, sorted((d["file"], d["digit"], d["shape"]) for d in drawn))


def _to_gray(file: Path) -> None:
    pixels = np.asarray(Image.open(file))
    if pixels.ndim != 3 or (pixels[..., :3] != pixels[..., :1]).any() or (pixels[..., 3] != 255).any():
        raise ValueError(f"{file.name}: the pad sent colour or transparency; it cannot be stored as grey")
    Image.fromarray(pixels[..., 0]).save(file, "PNG", optimize=True)


def _wait_for(url: str, api: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API at {url} did not start:\n{log.read_text(errors='replace')}") from None
            time.sleep(0.2)
