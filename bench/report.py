"""docs/benchmarks.md from the results of one run."""


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}" if baseline else "n/a"


def markdown(r: dict) -> str:
    m = r["machine"]
    rows = []

    def row(figure: str, ours: str, baseline: str, ratio: str, target: str) -> None:
        rows.append(f"| {figure} | {ours} | {baseline} | {ratio} | {target} |")

    for key, label in (("tutorial", "tutorial config (100 batches of 64)"), ("larger", "larger config")):
        t = r[key]
        row(
            f"training images/s, {label}",
            f"{t['service_images_per_s']:,.0f}",
            f"{t['bare_images_per_s']:,.0f} (bare loop)",
            _ratio(t["service_images_per_s"], t["bare_images_per_s"]),
            "≥ 0.95",
        )
    t = r["tutorial"]
    row(
        "job latency `POST /jobs {}` → succeeded, warm worker (s)",
        f"{t['service_latency_s']:.2f}",
        f"{t['bare_train_test_s']:.2f} (bare train + full test)",
        _ratio(t["service_latency_s"], t["bare_train_test_s"]),
        "≤ 2",
    )
    row(
        "tutorial full-test accuracy (mean of seeds)",
        f"{t['service_accuracy']:.4f}",
        f"{t['bare_accuracy']:.4f} (bare loop)",
        "",
        "≈ 0.93",
    )
    for run, seed in zip(r["fast"], range(len(r["fast"])), strict=True):
        row(
            f"`fast` preset, seed {seed}: training s / full-test accuracy",
            f"{run['train_s']:.2f} s / {run['test_accuracy']:.4f}",
            "",
            "",
            "≤ 5 s / ≥ 0.990",
        )
    for run in r.get("best", []):
        row(
            "`best` preset: training s / full-test accuracy",
            f"{run['train_s']:.1f} s / {run['test_accuracy']:.4f}",
            "",
            "",
            "≤ 60 s / ≥ 0.995",
        )
    inf = r["inference"]
    for kind in ("pixels", "png"):
        ours, floor = inf[kind]["c1"], inf["floor"]["c1"]
        row(
            f"`/predict` one image as {kind}, concurrency 1: p50 / p99 (ms)",
            f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f}",
            f"{floor['p50_ms']:.1f} / {floor['p99_ms']:.1f} (`/healthz`)",
            _ratio(floor["p50_ms"], ours["p50_ms"]),
            "",
        )
        ours, floor = inf[kind]["c32"], inf["floor"]["c32"]
        row(
            f"`/predict` one image as {kind}, concurrency 32: requests/s",
            f"{ours['requests_per_s']:,.0f}",
            f"{floor['requests_per_s']:,.0f} (`/healthz`)",
            _ratio(ours["requests_per_s"], floor["requests_per_s"]),
            "≥ 0.5",
        )
    row("`/predict` batches of 256 PNG images: images/s", f"{inf['batch256']['images_per_s']:,.0f}", "", "", "")
    for role in ("api", "worker"):
        row(
            f"resident memory of the {role}: idle / peak under load (MiB)",
            f"{r['memory_idle'][role]:.0f} / {r['memory_loaded'][role]:.0f}",
            "",
            "",
            "",
        )

    curve = "\n".join(f"| {p['epochs']:.3f} | {p['train_s']:.2f} | {p['test_accuracy']:.4f} |" for p in r["fast_curve"])
    errors = sum(v["errors"] for k, c in inf.items() if k != "batch256" for v in c.values()) + inf["batch256"]["errors"]
    return f"""# Benchmarks

Measured by `make bench` (`python -m bench`) on {m["cpu"]}, {m["cores"]} cores, device `{m["device"]}`,
torch {m["torch"]}, Python {m["python"]}, mnist-service {m["service"]}, {m["date"]}.
Every baseline was measured in the same run, on the same machine, interleaved with the service's runs.
The service ran as `mnist-service run` (embedded Redis, the API, one warm worker), driven over loopback HTTP.

| figure | this service | baseline (same run) | ratio | target |
|---|---|---|---|---|
{chr(10).join(rows)}

Ratios: service ÷ baseline for throughputs, service ÷ baseline for the latency row, floor p50 ÷ ours for the
p50 rows. Load-generator errors over all inference runs: {errors}.

## `fast` preset: full-test accuracy against training time

The preset shortened or lengthened (bare loop, seed 0; the one-cycle schedule follows the length).

| epochs | training s | full-test accuracy |
|---|---|---|
{curve}
"""
