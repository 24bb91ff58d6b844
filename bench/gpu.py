"""``python -m bench.gpu``: the GPU figures, as bench/gpu.sh runs them on a machine with a CUDA GPU.

Through the service as users run it (``mnist-service run``: embedded Redis, the API, one warm worker), each
figure beside the bare loop of the same run where there is one (bench/training.py):

- the tutorial job: its latency from ``POST /jobs`` to the job's end (warm worker), images/s bare and served;
- a large config (the ``best`` preset), images/s bare and served;
- time to 99.0% on the full test set: the ``fast`` preset and the ``gpu`` preset, training seconds per seed;
- batched inference on the device: images/s of the tutorial's and the ``gpu`` preset's networks, fp32 and bf16.

``--cpu-dry-run`` runs every step on the CPU with short lengths, to prove the script end to end on a machine
without a GPU: its figures are labelled as such and say nothing about a GPU. Results: ``--out``/gpu-bench.json
and gpu-bench.md. ``--render`` writes docs/benchmarks.md again from docs/benchmarks.json and, once a GPU run's
gpu-bench.json is copied there, docs/benchmarks-gpu.json (report.markdown's GPU section).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench import training
from bench.stack import running_service
from service.domain.network import build_network
from service.domain.training_config import TrainingConfig
from service.settings import get_settings
from worker.training import device_dataset, evaluate, resolve_device

DOCS = Path(__file__).resolve().parent.parent / "docs"
STORED = DOCS / "benchmarks-gpu.json"  # a GPU run's gpu-bench.json, copied into the repo
TARGET = 0.99
TRAINING_TARGET_S = 1.0  # the goal for the `gpu` preset; a published run does 0.76 s on a GTX 1660 Ti
RUN_COMMAND = "bash bench/gpu.sh"


def inference(data_dir: Path, device: torch.device, config: TrainingConfig, repeats: int) -> dict:
    """Images/s of the network of ``config`` over the 10,000 test images on ``device``, in chunks of 2,000 (the
    training loop's own evaluation); untrained weights cost the same. The median of ``repeats`` after a warm-up."""
    data = device_dataset(data_dir, device)
    network = build_network(config).to(device).to(memory_format=torch.channels_last)
    figures = {}
    for precision in ("fp32", "bf16"):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            evaluate(network, data.test_x, data.test_y)  # kernels chosen, caches warm
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                evaluate(network, data.test_x, data.test_y)  # ends on .item(): the device has finished
                seconds.append(time.perf_counter() - started)
        figures[precision] = len(data.test_y) / statistics.median(seconds)
    return figures


# Configs timed to 99%: the presets, and `gpu` without bf16 (on small convolutions the casts may cost more than
# bf16 saves).
TO_99 = {"fast": {"preset": "fast"}, "gpu": {"preset": "gpu"}, "gpu, fp32": {"preset": "gpu", "precision": "fp32"}}


def to_target(client, fields: dict, seeds: list[int], device: str, epochs: float | None) -> dict:
    """The config through the service, one job per seed: training seconds and full-test accuracy."""
    length = {"epochs": epochs} if epochs else {}
    runs = [training.service_run(client, TrainingConfig(**fields, seed=s, device=device, **length)) for s in seeds]
    return {
        "runs": runs,
        "train_s": training.median(runs, "train_s"),
        "accuracies": [run["test_accuracy"] for run in runs],
        "reached": all(run["test_accuracy"] >= TARGET for run in runs),
    }


def measure(device: str, dry_run: bool) -> dict:
    # The machine and its load as `make bench` records them (imported here: bench.__main__ imports bench.report,
    # which imports this module for its GPU section).
    from bench.__main__ import load_average, machine

    data_dir = get_settings().data_dir
    repeats, seeds = (1, [0]) if dry_run else (5, [0, 1, 2])
    short = 0.05 if dry_run else None  # epochs: a dry run proves the steps, not the accuracy
    results: dict = {
        "dry_run": dry_run,
        "machine": {**machine(), "cuda": torch.version.cuda, "cudnn_benchmark_in_worker": True},
        "load_average": {"start": load_average()},
    }
    with running_service(data_dir) as (client, _pids):
        results["tutorial"] = training.overhead(client, data_dir, TrainingConfig(device=device), repeats)
        large = TrainingConfig(preset="best", device=device, **({"epochs": short} if short else {}))
        results["large"] = {"config": "best", **training.overhead(client, data_dir, large, repeats=1)}
        results["to_99"] = {name: to_target(client, fields, seeds, device, short) for name, fields in TO_99.items()}
    results["inference"] = {
        name: inference(data_dir, resolve_device(device), TrainingConfig(preset=name), repeats=3 if dry_run else 20)
        for name in ("tutorial", "gpu")
    }
    results["load_average"]["end"] = load_average()
    return results


def markdown(results: dict | None) -> str:
    """docs/benchmarks.md's GPU section: the figures of a GPU run, or how to get them while there are none."""
    how = (
        f"`{RUN_COMMAND}` on a machine with a CUDA GPU (it installs what the service needs besides torch, runs "
        "tests/test_gpu.py on CUDA, then `python -m bench.gpu`; see the script's header for an offline machine). "
        "To publish its figures: copy its `gpu-bench.json` to `docs/benchmarks-gpu.json` and run "
        "`python -m bench.gpu --render`."
    )
    if results is None:
        return f"""## GPU

**Pending: no GPU run yet.** The worker's CUDA path is tested by tests/test_gpu.py, whose CUDA cases are skipped on
machines without a GPU, as in CI; this section's figures will come from a run on one. To get them: {how}

It will give, for the GPU it ran on: the tutorial job's latency through the service with a warm worker; images/s of
the bare loop and of the service for the tutorial and for a large config (`best`); training time to
{TARGET:.1%} full-test accuracy with the `fast` preset and with the `gpu` preset (bf16, batches of 512, the
data resident on the GPU; the goal: at most {TRAINING_TARGET_S:g} s of training); and images/s of batched
inference on the GPU."""
    m = results["machine"]
    label = "a **CPU dry run** (the steps, not GPU figures)" if results["dry_run"] else f"`{m['device']}`"
    tutorial, large, to_99, inference = (results[k] for k in ("tutorial", "large", "to_99", "inference"))
    rows = [
        "| figure | bare loop | through the service |",
        "|---|---|---|",
        f"| tutorial: latency of one job (POST to ended, warm worker) | {tutorial['bare_train_test_s']:.2f} s "
        f"(train + test) | {tutorial['service_latency_s']:.2f} s |",
        f"| tutorial: images/s | {tutorial['bare_images_per_s']:,.0f} | {tutorial['service_images_per_s']:,.0f} |",
        f"| large (`{large['config']}`): images/s | {large['bare_images_per_s']:,.0f} | "
        f"{large['service_images_per_s']:,.0f} |",
    ]
    for name, run in to_99.items():
        accuracies = ", ".join(f"{a:.2%}" for a in run["accuracies"])
        rows.append(
            f"| `{name}`: training time (median), full-test accuracy per seed | | {run['train_s']:.2f} s "
            f"({accuracies}; {TARGET:.0%} {'reached' if run['reached'] else '**not reached**'}) |"
        )
    for name, figures in inference.items():
        rows.append(
            f"| inference, `{name}` network, chunks of 2,000: images/s fp32 / bf16 | "
            f"{figures['fp32']:,.0f} / {figures['bf16']:,.0f} | |"
        )
    table = "\n".join(rows)
    cuda, load = m["cuda"] or "none", " / ".join(map(str, results["load_average"]["start"]))
    return f"""## GPU

Measured by `{RUN_COMMAND}` on {label}, CUDA {cuda}, torch {m["torch"]}, {m["cpu"]} ({m["cores"]} cores),
{m["date"]}; load average {load} at the start. The goal for `gpu`: at most
{TRAINING_TARGET_S:g} s of training to {TARGET:.1%}. Again: {how}

{table}"""


def stored() -> dict | None:
    """The GPU run kept in the repo, if any."""
    return json.loads(STORED.read_text()) if STORED.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--cpu-dry-run", action="store_true", help="every step on the CPU, short: proves the script")
    parser.add_argument("--out", type=Path, default=Path("gpu-bench"), help="folder for gpu-bench.json and .md")
    parser.add_argument("--render", action="store_true", help="rewrite docs/benchmarks.md from the stored JSON")
    args = parser.parse_args()
    if args.render:
        from bench import report

        results = json.loads((DOCS / "benchmarks.json").read_text())
        (DOCS / "benchmarks.md").write_text(report.markdown(results))
        return
    if not args.cpu_dry_run and not torch.cuda.is_available():
        parser.exit(2, "torch sees no CUDA device: run this on a GPU machine, or with --cpu-dry-run\n")
    results = measure("cpu" if args.cpu_dry_run else "cuda", args.cpu_dry_run)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-bench.json").write_text(json.dumps(results, indent=2))
    (args.out / "gpu-bench.md").write_text(markdown(results) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
