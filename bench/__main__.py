"""``python -m bench``: every benchmark, bounded in time, written to docs/benchmarks.md and docs/benchmarks.json.

Each figure of the service is set beside a baseline measured in the same run on the same machine: serving
against a bare FastAPI app (bench/baseline_app.py) loaded by ``wrk``, training against the bare loop.
Benchmarks are not tests: nothing here asserts a time. ``make bench`` runs ``python -m bench --soak 600``.
"""

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import torch

import service
from bench import profile, report, serving, training, wrk
from bench.memory import RssSampler
from bench.soak import soak
from bench.stack import running_service
from service.domain.training_config import TrainingConfig
from service.settings import get_settings


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "device": training.device_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "service": service.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs, no `best` preset")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--soak", type=float, default=0, metavar="SECONDS", help="mixed traffic this long, RSS sampled")
    parser.add_argument("--no-training", action="store_true", help="serving (and soak) only, while iterating")
    parser.add_argument("--no-serving", action="store_true", help="training (and soak) only")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per serving figure (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="length of one wrk run (default 5, quick 2)")
    args = parser.parse_args()
    if not wrk.available():
        parser.exit(2, "wrk is not installed: `apt-get install wrk` (make bench does it)\n")
    repeats = 1 if args.quick else 3
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (2 if args.quick else 5)
    settings = get_settings()
    data_dir = settings.data_dir
    results: dict = {"machine": machine(), "load_average": {"start": load_average()}}

    def attempt(name: str, measure) -> None:
        """`results[name] = measure()`; a section that fails is reported as failed and the run goes on (each is
        saved as it ends: what a failure further on would not take away)."""
        try:
            results[name] = measure()
        except Exception as error:  # e.g. a job that failed: say so in the report, keep the other figures
            results.setdefault("failed", {})[name] = f"{type(error).__name__}: {error}"
            print(f"bench: {name} failed: {error}", flush=True)
        save(args.out, results)

    with (
        running_service(data_dir) as (client, pids),
        serving.baseline_app(settings.inference_threads) as (baseline_url, baseline_pid),
    ):
        watched = {"api": pids["api"], "worker": pids["worker"], "baseline": baseline_pid}
        with RssSampler(watched) as memory:
            if not args.no_serving:
                memory.phase("serving")
                profiler = (
                    profile.Profiler(pids["api"], scenarios=("get", "pixels", "png", "batch256"))
                    if profile.available()
                    else None
                )
                attempt(
                    "serving",
                    lambda: serving.compare(str(client.base_url), baseline_url, data_dir, rounds, seconds, profiler),
                )
            memory.phase("between")
            # The soak before the training: it needs the service whole, and a worker that a long training job
            # loses (the machine's other users may stop it) takes the service down with it.
            if args.soak:
                attempt("soak", lambda: soak(client, pids, data_dir, args.soak))
            if not args.no_training:
                memory.phase("training")
                attempt("tutorial", lambda: training.overhead(client, data_dir, TrainingConfig(), max(repeats, 5)))
                attempt(
                    "larger",
                    lambda: training.overhead(
                        client, data_dir, TrainingConfig(epochs=1 if args.quick else 3, test_every=50), repeats=1
                    ),
                )
                attempt("fast", lambda: training.preset_runs(client, "fast", seeds=list(range(repeats))))
                attempt("fast_curve", lambda: training.time_to_accuracy_curve(data_dir, "fast", [0.5, 0.75, 1.0, 1.5]))
                if hasattr(training, "fast_against_handwritten"):  # issue 13, items 4 and 5 (bench/training.py)
                    attempt(
                        "fast_vs_handwritten",
                        lambda: training.fast_against_handwritten(client, data_dir, seeds=list(range(repeats))),
                    )
                if hasattr(training, "threads_per_worker"):
                    attempt("threads", lambda: training.threads_per_worker(data_dir, TrainingConfig(train_batches=400)))
                if not args.quick:
                    attempt("best", lambda: training.preset_runs(client, "best", seeds=[0]))
            memory.phase("done")
        results["memory"] = {
            role: {
                "idle_mib": memory.first(role, "idle"),
                "serving_peak_mib": memory.peak(role, "serving"),
                "training_peak_mib": memory.peak(role, "training"),
            }
            for role in watched
        }
    results["load_average"]["end"] = load_average()
    save(args.out, results)
    (args.out / "benchmarks.md").write_text(report.markdown(results))
    print(report.markdown(results))


def save(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
