"""``python -m bench``: every benchmark, bounded in time, written to docs/benchmarks.md and docs/benchmarks.json.

Each figure of the service is set beside a baseline measured in the same run on the same machine.
Benchmarks are not tests: nothing here asserts a time.
"""

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import torch

import service
from bench import inference, report, training
from bench.stack import rss_mib, running_service
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for trying the harness")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    data_dir = get_settings().data_dir
    results = {"machine": machine()}
    with running_service(data_dir) as (client, pids):
        results["memory_idle"] = {role: rss_mib(pid)[0] for role, pid in pids.items() if role != "redis"}
        results["tutorial"] = training.overhead(client, data_dir, TrainingConfig(), repeats=max(repeats, 5))
        results["larger"] = training.overhead(
            client, data_dir, TrainingConfig(epochs=1 if args.quick else 3, test_every=50), repeats=1
        )
        results["fast"] = training.preset_runs(client, "fast", seeds=list(range(repeats)))
        results["fast_curve"] = training.time_to_accuracy_curve(data_dir, "fast", [0.5, 0.75, 1.0, 1.5])
        if not args.quick:
            results["best"] = training.preset_runs(client, "best", seeds=[0])
        results["inference"] = inference.run(client, seconds=2 if args.quick else 5)
        results["memory_loaded"] = {role: rss_mib(pid)[1] for role, pid in pids.items() if role != "redis"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(results, indent=2))
    (args.out / "benchmarks.md").write_text(report.markdown(results))
    print(report.markdown(results))


if __name__ == "__main__":
    main()
