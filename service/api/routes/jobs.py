"""Training jobs: submit, list, inspect, and read their per-batch metrics."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status

from service.api.deps import RedisDep, SettingsDep
from service.domain.training_config import TrainingConfig
from service.queue import jobs, metric_stream
from service.schemas.errors import ErrorResponse
from service.schemas.jobs import Job, JobList, MetricsPage

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=jobs.JOB_ID_PATTERN, description="The job's id (a UUID).")]
_NOT_FOUND = {404: {"description": "No such job"}}
_SUBMIT_ERRORS = {
    400: {"model": ErrorResponse, "description": "A JSON body that cannot even be read as text (not UTF-8)."},
    415: {"model": ErrorResponse, "description": "A body that is not `application/json`."},
    429: {
        "model": ErrorResponse,
        "description": "`MNIST_MAX_QUEUED_JOBS` jobs already wait in the queue: retry after the `Retry-After` "
        "header's seconds.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    },
}


async def json_body(request: Request) -> None:
    """The configuration comes as JSON: a body of another content type (`curl -d` sends a form's unless told
    otherwise), or of none, is a 415 that says what to send, rather than a 422 about a "dictionary"."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    if await request.body():  # already read by FastAPI: no body at all still means the tutorial's config
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the training configuration as JSON: Content-Type: application/json "
            f"(got {media_type or 'no content type'})",
        )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=_SUBMIT_ERRORS,
    dependencies=[Depends(json_body)],
)
def submit_job(
    redis: RedisDep,
    settings: SettingsDep,
    response: Response,
    config: Annotated[
        TrainingConfig,
        Body(
            openapi_examples={
                "tutorial": {"summary": "The tutorial's run (all defaults)", "value": {}},
                "short": {"summary": "30 batches, fixed seed", "value": {"train_batches": 30, "seed": 1}},
            }
        ),
    ] = None,
) -> Job:
    """Queue a training job. An empty body (or `{}`) trains the tutorial's model."""
    job = jobs.submit(redis, settings, config or TrainingConfig())
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get("", response_model=JobList)
def list_jobs(
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobList:
    """Jobs, newest first."""
    return jobs.list_jobs(redis, offset, limit)


@router.get("/{job_id}", response_model=Job, responses=_NOT_FOUND)
def get_job(redis: RedisDep, job_id: JobId) -> Job:
    return jobs.get(redis, job_id)


@router.post(
    "/{job_id}/cancel",
    response_model=Job,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NOT_FOUND, 409: {"description": "The job has already ended"}},
)
def cancel_job(redis: RedisDep, job_id: JobId) -> Job:
    """Cancel a job: a queued one never runs; a running one stops at its next batch (its metrics are kept,
    no model is saved). The answer is the job as it is now: poll it to see `canceled`."""
    return jobs.cancel(redis, job_id)


@router.get("/{job_id}/metrics", response_model=MetricsPage, response_model_exclude_none=True, responses=_NOT_FOUND)
def get_metrics(
    redis: RedisDep,
    job_id: JobId,
    since: Annotated[str | None, Query(pattern=metric_stream.CURSOR_PATTERN, description="A page's cursor.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsPage:
    """Metric points after `since`, oldest first: one per training batch, with `val_*` every `test_every`."""
    return jobs.metrics(redis, job_id, since, limit)
