"""Resident memory of the processes under test, sampled from /proc in a background thread, by phase of the run."""

import threading
import time
from pathlib import Path


def rss_mib(pid: int) -> float | None:
    """Resident memory now, in MiB; None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples each process's resident memory every `interval` seconds while it runs; `phase()` names what the
    run does from now on, so that each phase has its own figures."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids, self.interval = pids, interval
        self.samples: list[tuple[float, str, dict[str, float]]] = []  # (seconds since start, phase, MiB by role)
        self._phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def phase(self, name: str) -> None:
        self.sample()  # the last sample of the phase that ends
        self._phase = name
        self.sample()

    def sample(self) -> dict[str, float]:
        now = {role: mib for role, pid in self.pids.items() if (mib := rss_mib(pid)) is not None}
        self.samples.append((time.monotonic() - self._started, self._phase, now))
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def peak(self, role: str, *phases: str) -> float | None:
        values = [s[role] for _, phase, s in self.samples if phase in phases and role in s]
        return max(values) if values else None

    def first(self, role: str, phase: str) -> float | None:
        return next((s[role] for _, p, s in self.samples if p == phase and role in s), None)

    def series(self, role: str, phase: str) -> list[tuple[float, float]]:
        return [(t, s[role]) for t, p, s in self.samples if p == phase and role in s]


def slope_mib_per_min(series: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(series) < 2:
        return 0.0
    n = len(series)
    mean_t = sum(t for t, _ in series) / n
    mean_m = sum(m for _, m in series) / n
    var = sum((t - mean_t) ** 2 for t, _ in series)
    if var == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (m - mean_m) for t, m in series) / var
