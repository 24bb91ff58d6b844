"""``python -m bench --soak SECONDS``: mixed traffic for a while, and the API's and a worker's resident memory
sampled all along; memory that keeps growing shows as a slope.

The traffic, over loopback only and bounded in rate and time: `wrk` with 4 connections, each pausing 5 ms
between requests, cycling through probes, predictions (pixels, a PNG upload, a batch of 16 pictures), listings
and a Prometheus scrape; and a small training job every 15 s, whose metrics are then read back, so that the
worker trains and saves models, and the API loads new defaults, throughout.
"""

import base64
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench import wrk
from bench.memory import RssSampler, slope_mib_per_min
from bench.serving import BOUNDARY, multipart, png
from service.domain.mnist import load_mnist

JOB = {"train_batches": 20, "test_every": 10, "test_batch_size": 500}
CONNECTIONS = 4
PAUSE_MS = 5
JOB_EVERY_S = 15.0
SAMPLE_EVERY_S = 5.0

_SCRIPT = """
local requests = {}
local function body(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end
init = function(args)
%(init)s
end
local n = 0
request = function()
  n = n %% #requests + 1
  return requests[n]
end
delay = function()
  return %(pause)d
end
"""


def mixed_script(folder: Path, data_dir: Path) -> Path:
    images = load_mnist(data_dir).test_images
    json_type = {"Content-Type": "application/json"}
    traffic = [
        ("GET", "/healthz", None, {}),
        ("POST", "/predict", json.dumps({"pixels": images[1].reshape(-1).tolist()}), json_type),
        ("POST", "/predict", multipart(png(images[2])), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),
        ("GET", "/jobs?limit=20", None, {}),
        (
            "POST",
            "/predict",
            json.dumps({"instances": [{"image": base64.b64encode(png(i)).decode()} for i in images[3:19]]}),
            json_type,
        ),
        ("GET", "/models", None, {}),
        ("POST", "/predict", json.dumps({"pixels": (images[4] / 255).round(4).tolist(), "scale": "1"}), json_type),
        ("GET", "/metrics", None, {}),
        ("GET", "/readyz", None, {}),
    ]
    lines = []
    for index, (method, path, content, headers) in enumerate(traffic):
        body = "nil"
        if content is not None:
            file = folder / f"soak-{index}.body"
            file.write_bytes(content if isinstance(content, bytes) else content.encode())
            body = f'body("{file}")'
        header_table = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()) + "}"
        lines.append(f'  requests[{index + 1}] = wrk.format("{method}", "{path}", {header_table}, {body})')
    script = folder / "soak.lua"
    script.write_text(_SCRIPT % {"init": "\n".join(lines), "pause": PAUSE_MS} + wrk.DONE)
    return script


def soak(client: httpx.Client, pids: dict[str, int], data_dir: Path, seconds: float) -> dict:
    """The traffic above for `seconds`; RSS of the API and the worker every 5 s: first, last, peak, and the
    least-squares slope, over the whole soak and over its second half (after any warm-up growth)."""
    stop = threading.Event()
    jobs = {"submitted": 0, "succeeded": 0, "other": 0}

    def train_now_and_then() -> None:
        while not stop.wait(JOB_EVERY_S):
            try:
                job_id = client.post("/jobs", json={**JOB, "seed": jobs["submitted"]}).json()["id"]
                jobs["submitted"] += 1
                deadline = time.monotonic() + 120
                while (job := client.get(f"/jobs/{job_id}").json())["ended"] is False and time.monotonic() < deadline:
                    time.sleep(0.5)
                client.get(f"/jobs/{job_id}/metrics", params={"limit": 1000})
                jobs["succeeded" if job["status"] == "succeeded" else "other"] += 1
            except httpx.HTTPError:
                jobs["other"] += 1

    with tempfile.TemporaryDirectory() as folder:
        script = mixed_script(Path(folder), data_dir)
        trainer = threading.Thread(target=train_now_and_then, name="soak-jobs", daemon=True)
        watched = {role: pid for role, pid in pids.items() if role in ("api", "worker")}
        with RssSampler(watched, interval=SAMPLE_EVERY_S) as sampler:
            sampler.phase("soak")
            trainer.start()
            traffic = wrk.run(str(client.base_url), "/healthz", script, CONNECTIONS, seconds)
            stop.set()
            trainer.join(timeout=150)
            sampler.phase("after")
    result = {"seconds": seconds, "traffic": traffic, "jobs": jobs, "memory": {}}
    for role in watched:
        series = sampler.series(role, "soak")
        values = [m for _, m in series]
        half = [(t, m) for t, m in series if t >= (series[0][0] + series[-1][0]) / 2]
        result["memory"][role] = {
            "start_mib": values[0],
            "end_mib": values[-1],
            "max_mib": max(values),
            "slope_mib_per_min": slope_mib_per_min(series),
            "second_half_slope_mib_per_min": slope_mib_per_min(half),
            "samples": len(values),
        }
    return result
