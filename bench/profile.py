"""Where the API's time goes under a load: py-spy (from PyPI) samples the API process while wrk runs, counting
only the samples where a thread holds the GIL (``--gil``: Python's CPU time, not its waits). Each sample is
put under the part of the stack its innermost frame belongs to, so the shares add up to 100%.
"""

import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

# The innermost frame's file (or function) → the part of the stack it belongs to; first match wins.
PARTS = [
    ("forward pass (torch, batching)", ("torch/", "Batcher.")),
    ("model store check (stat calls)", ("ModelCache.",)),
    (
        "/predict: body, JSON, pixels, answer",
        ("service/api/routes/predict.py", "service/api/bodies.py", "pydantic", "bench/baseline_app.py"),
    ),
    ("pictures: decoding, MNIST-like", ("service/serving/images.py", "PIL/")),
    ("our middlewares (request id, metrics, limits, key)", ("service/api/",)),
    ("access log (JSON line)", ("logging/", "service/logs.py")),
    ("Prometheus", ("prometheus_client/",)),
    ("FastAPI / Starlette (routing, dependencies, responses)", ("fastapi/", "starlette/", "anyio/", "contextlib")),
    ("uvicorn + uvloop (HTTP parsing, socket writes)", ("uvicorn/", "uvloop/", "asyncio/", "httptools")),
    ("numpy", ("numpy/",)),
]


def executable() -> str | None:
    """py-spy: beside this Python (a virtual environment's bin/, not always on PATH), or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    return executable() is not None


class Profiler:
    """Profiles the API (`pid`) during one extra service run of each scenario named in `scenarios`."""

    def __init__(self, pid: int, scenarios: tuple[str, ...], rate: int = 250) -> None:
        self.pid, self.scenarios, self.rate = pid, scenarios, rate

    def record(self, load) -> dict:
        """Run `load()` (a wrk run) while py-spy samples the API; the shares of its GIL time by part."""
        with tempfile.TemporaryDirectory() as folder:
            raw = Path(folder) / "profile.txt"
            result: dict = {}
            runner = threading.Thread(target=lambda: result.update(load=load()))
            spy = subprocess.Popen(
                [
                    *(
                        executable(),
                        "record",
                        "--pid",
                        str(self.pid),
                        "--gil",
                        "--nonblocking",
                        "--rate",
                        str(self.rate),
                    ),
                    *("--format", "raw", "--output", str(raw), "--duration", "600"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            runner.start()
            runner.join()
            spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
            _, error = spy.communicate(timeout=60)
            if not raw.exists():
                return {"error": error.decode(errors="replace")[-500:]}
            shares = parts(raw.read_text())
        return {"requests_per_s": result["load"]["requests_per_s"], **shares}


def parts(collapsed: str) -> dict:
    """Shares of the samples by part of the stack (see PARTS), from py-spy's raw (collapsed stacks) output."""
    counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        counts[_part(frames)] += int(count)
    return {
        "samples": total,
        "shares": {part: counts[part] / total for part, _ in [*PARTS, ("other", ())] if total and counts[part]},
    }


def _part(frames: list[str]) -> str:
    # py-spy writes a frame as "function (file:line)"; match on the innermost frame first, then outwards, so that
    # a C function called from our code (no frame of its own) counts for the code that called it.
    for frame in reversed(frames):
        for part, markers in PARTS:
            if any(marker in frame for marker in markers):
                return part
    return "other"
