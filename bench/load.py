"""``python -m bench.load``: a bounded load test with nothing lost.

32 concurrent clients call ``POST /predict`` for 20 s over loopback while 20 training jobs are submitted and
polled; every request must succeed, every job must succeed, and every job's metrics must hold each batch
exactly once. Prints the figures that docs/reliability.md quotes; exits non-zero on any loss.
"""

import argparse
import asyncio
import sys
import time

import httpx

from bench.stack import running_service, wait_for_job
from service.domain.mnist import load_mnist
from service.settings import get_settings

JOB = {"train_batches": 40, "test_every": 10, "test_batch_size": 200}


async def predict_load(url: str, pixels: list[int], clients: int, seconds: float) -> tuple[int, int]:
    sent = errors = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one() -> None:
            nonlocal sent, errors
            while time.monotonic() < deadline:
                response = await client.post("/predict", json={"pixels": pixels})
                sent += 1
                errors += response.status_code != 200

        await asyncio.gather(*(one() for _ in range(clients)))
    return sent, errors


def submit_and_check(client: httpx.Client, jobs: int) -> dict:
    ids = [client.post("/jobs", json={**JOB, "seed": seed}).json()["id"] for seed in range(jobs)]
    ended = [wait_for_job(client, job_id, timeout=600) for job_id in ids]
    complete = 0
    for job in ended:
        batches = [
            p["batch"] for p in client.get(f"/jobs/{job['id']}/metrics", params={"limit": 10_000}).json()["points"]
        ]
        complete += batches == list(range(1, JOB["train_batches"] + 1))
    return {"jobs": jobs, "succeeded": sum(j["status"] == "succeeded" for j in ended), "metrics_complete": complete}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    pixels = load_mnist(get_settings().data_dir).test_images[0].reshape(-1).tolist()
    with running_service(get_settings().data_dir) as (client, _):
        started = time.monotonic()
        loop = asyncio.new_event_loop()
        load = loop.run_in_executor(
            None, lambda: asyncio.run(predict_load(str(client.base_url), pixels, args.clients, args.seconds))
        )
        jobs = submit_and_check(client, args.jobs)
        sent, errors = loop.run_until_complete(load)
        elapsed = time.monotonic() - started
    print(f"predict requests sent: {sent} in {args.seconds:.0f} s by {args.clients} clients, errors: {errors}")
    print(
        f"jobs: {jobs['jobs']} submitted, {jobs['succeeded']} succeeded, "
        f"{jobs['metrics_complete']} with every batch exactly once; total {elapsed:.0f} s"
    )
    sys.exit(0 if errors == 0 and jobs["succeeded"] == jobs["metrics_complete"] == args.jobs else 1)


if __name__ == "__main__":
    main()
