"""Inference: POST /predict against the floor (a trivial JSON endpoint of the same server), same run."""

import asyncio
import base64
import io
import statistics
import time

import httpx
import numpy as np
from PIL import Image

from service.domain.mnist import load_mnist
from service.settings import get_settings


async def _load(url: str, request: dict, concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients sending ``request`` back to back for ``seconds``; loopback only, bounded."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.request(**request)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def run(client: httpx.Client, seconds: float) -> dict:
    url = str(client.base_url)
    mnist = load_mnist(get_settings().data_dir)
    digit = mnist.test_images[0]
    requests = {
        "floor": {"method": "GET", "url": "/healthz"},
        "pixels": {"method": "POST", "url": "/predict", "json": {"pixels": digit.reshape(-1).tolist()}},
        "png": {"method": "POST", "url": "/predict", "files": {"file": ("digit.png", _png(digit), "image/png")}},
    }
    results = {}
    for name, request in requests.items():
        results[name] = {f"c{c}": asyncio.run(_load(url, request, c, seconds)) for c in (1, 32)}
    batch = {"instances": [{"image": base64.b64encode(_png(image)).decode()} for image in mnist.test_images[:256]]}
    batch_run = asyncio.run(_load(url, {"method": "POST", "url": "/predict", "json": batch}, 1, seconds))
    results["batch256"] = {**batch_run, "images_per_s": 256 * batch_run["requests_per_s"]}
    return results
