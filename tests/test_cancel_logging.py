"""A user's cancel is a normal end of a job: the worker logs one INFO line for it, no ERROR and no traceback. The
session's worker process, its log read as the JSON lines it writes (the lines about this test's job: the worker
trains other tests' jobs too); the API runs in the test process."""

import json
import re
import time

from tests.helpers import wait_for_job, wait_for_points

LONG_JOB = {"train_batches": 100_000, "test_every": 1000}


def log_entries(output: str) -> list[dict]:
    entries = []
    for line in output.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append({"level": "?", "message": line})  # not a JSON log line: kept, to be looked at
    return entries


def wait_for_log(process, pattern: str, timeout: float = 20) -> str:
    """The process's output once `pattern` is in it (a job's end may be logged just after its status is saved)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, output := process.output()):
        assert time.monotonic() < deadline, f"no {pattern!r} in the log within {timeout} s:\n{output}"
        time.sleep(0.05)
    return output


def test_a_cancel_is_one_info_line_in_the_workers_log_not_an_error(service, worker):
    with service.client() as client:
        job_id = client.post("/jobs", json=LONG_JOB).json()["id"]
        wait_for_points(client, job_id)
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
        job = wait_for_job(client, job_id, timeout=30)
    assert job["status"] == "canceled" and job["error"] == "canceled", worker.output()
    # The INFO line, or RQ's ERROR: whichever the worker writes once the job has ended.
    wait_for_log(worker, rf"job {job_id}( canceled by request at batch \d+|: exception raised)")
    entries = [entry for entry in log_entries(worker.output()) if job_id in json.dumps(entry)]  # RQ's name it too
    output = "\n".join(map(json.dumps, entries))
    assert "Traceback" not in output, output
    assert not [entry for entry in entries if entry["level"] in ("ERROR", "CRITICAL", "?")], output
    canceled = [entry for entry in entries if "canceled by request" in entry["message"]]
    assert len(canceled) == 1 and canceled[0]["level"] == "INFO", output
    assert canceled[0]["logger"] == "worker" and "exception" not in canceled[0]
    batch = int(re.search(r"at batch (\d+)", canceled[0]["message"])[1])
    with service.client() as client:
        points = client.get(f"/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
    assert batch == points[-1]["batch"]  # the last batch it trained, its metrics published
