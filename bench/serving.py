"""Serving: the service's endpoints against a bare FastAPI app (bench/baseline_app.py), same run, interleaved.

Both run as one uvicorn process each on this machine; ``wrk`` loads one of them at a time over loopback. Each
figure is measured in rounds that alternate the two (baseline first in odd rounds, the service first in even
ones), so that a change in the machine's load hits both alike; a figure is the median over the rounds, and a
ratio the median of the rounds' ratios.
"""

import base64
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench import wrk
from bench.stack import free_port
from service.domain.mnist import load_mnist

BOUNDARY = "----mnist-bench-boundary"

# What each scenario sends: to the baseline's path and the service's, the same bytes.
SCENARIOS = {
    # name: (label, baseline path, service path, concurrencies)
    "get": ("trivial GET: `/ping` vs `/healthz`", "/ping", "/healthz", (1, 32)),
    "pixels": ("one digit as 784 JSON pixels: naive `/predict` vs `/predict`", "/predict", "/predict", (1, 32)),
    "png": ("one digit as a PNG upload: naive `/predict/png` vs `/predict`", "/predict/png", "/predict", (1, 32)),
    "batch256": (
        "256 digits as base64 PNGs in JSON: naive `/predict/batch` vs `/predict`",
        "/predict/batch",
        "/predict",
        (1, 4),
    ),
}


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(picture: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + picture
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def requests(data_dir: Path) -> dict[str, wrk.Request]:
    images = load_mnist(data_dir).test_images
    digit = images[0]
    batch = {"instances": [{"image": base64.b64encode(png(image)).decode()} for image in images[:256]]}
    return {
        "get": wrk.Request("GET", ""),
        "pixels": wrk.Request(
            "POST", "", json.dumps({"pixels": digit.reshape(-1).tolist()}).encode(), "application/json"
        ),
        "png": wrk.Request("POST", "", multipart(png(digit)), f"multipart/form-data; boundary={BOUNDARY}"),
        "batch256": wrk.Request("POST", "", json.dumps(batch).encode(), "application/json"),
    }


@contextmanager
def baseline_app(torch_threads: int):
    """The bare app as a user starts it: ``uvicorn bench.baseline_app:app`` with uvicorn's defaults (uvloop and
    httptools, its access log on); yields (url, pid)."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "BASELINE_TORCH_THREADS": str(torch_threads)},
            cwd=Path(__file__).resolve().parent.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{url}/ping", timeout=5).raise_for_status()
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"the baseline app did not start:\n{log.read().decode()}") from None
                    time.sleep(0.2)
            yield url, process.pid
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def check(url: str, path: str, request: wrk.Request) -> None:
    """One request by hand before the load: it must answer 200 (wrk counts errors, it does not show them)."""
    headers = {"content-type": request.content_type} if request.content_type else {}
    response = httpx.request(request.method, url + path, content=request.body or None, headers=headers, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{request.method} {url}{path}: {response.status_code} {response.text[:300]}")


def compare(
    service_url: str, baseline_url: str, data_dir: Path, rounds: int, seconds: float, profile=None
) -> dict[str, dict]:
    """Every scenario at each of its concurrencies: `rounds` runs of `seconds` on each app, interleaved."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, request in requests(data_dir).items():
            label, base_path, service_path, concurrencies = SCENARIOS[name]
            script = wrk.write_script(request, Path(folder), name)
            check(baseline_url, base_path, request)
            check(service_url, service_path, request)
            results[name] = {"label": label}
            for connections in concurrencies:
                runs = {"baseline": [], "service": []}
                for number in range(rounds):
                    order = ("baseline", "service") if number % 2 == 0 else ("service", "baseline")
                    for who in order:
                        url, path = (baseline_url, base_path) if who == "baseline" else (service_url, service_path)
                        runs[who].append(wrk.run(url, path, script, connections, seconds))
                results[name][f"c{connections}"] = summary(runs)
                print(f"serving {name} c{connections}: {results[name][f'c{connections}']['ratio']:.2f}x", flush=True)
            if profile is not None and name in profile.scenarios:
                connections = max(concurrencies)
                results[name]["profile"] = {
                    "connections": connections,
                    **profile.record(
                        lambda s=script, c=connections, p=service_path: wrk.run(service_url, p, s, c, seconds)
                    ),
                }
    return results


def summary(runs: dict[str, list[dict]]) -> dict:
    def median(who: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[who])

    ratios = [s["requests_per_s"] / b["requests_per_s"] for s, b in zip(runs["service"], runs["baseline"], strict=True)]
    return {
        **{
            who: {
                "requests_per_s": median(who, "requests_per_s"),
                "p50_ms": median(who, "p50_ms"),
                "p99_ms": median(who, "p99_ms"),
                "errors": sum(run["errors"] for run in runs[who]),
                "requests": sum(run["requests"] for run in runs[who]),
            }
            for who in runs
        },
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }
