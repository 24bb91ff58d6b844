"""Load from ``wrk`` (Debian's package; ``make bench`` installs it): a compiled load generator, so the figures are
the server's, not the client's. Each request is described by a small Lua script written here (``wrk -s``): its
method, headers and body (read from a file, so a picture's bytes go as they are), and a ``done`` hook that prints
the figures as one JSON line.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class Request:
    """One kind of request: ``path`` on whichever server, with this method, body and content type."""

    method: str
    path: str
    body: bytes = b""
    content_type: str = ""


def available() -> bool:
    return shutil.which("wrk") is not None


def write_script(request: Request, folder: Path, name: str) -> Path:
    """The Lua script that makes wrk send `request`; its body is a file beside it."""
    lines = [f'wrk.method = "{request.method}"']
    if request.body:
        body = folder / f"{name}.body"
        body.write_bytes(request.body)
        lines += [
            f'local f = assert(io.open("{body}", "rb"))',
            "wrk.body = f:read('*a')",
            "f:close()",
            f'wrk.headers["Content-Type"] = "{request.content_type}"',
        ]
    script = folder / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n" + DONE)
    return script


def run(base_url: str, path: str, script: Path, connections: int, seconds: float) -> dict:
    """`connections` connections, each sending its next request as soon as the last is answered, for `seconds`.
    One wrk thread: on a machine of two cores, a second would take CPU from the server it measures."""
    completed = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--script",
            str(script),
            base_url.rstrip("/") + path,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next((line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    seconds_taken = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"],
        "requests_per_s": raw["requests"] / seconds_taken if seconds_taken else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
    }
