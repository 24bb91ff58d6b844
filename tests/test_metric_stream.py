"""Metric points through a real Redis: the worker's publisher and the API's cursor reads."""

import uuid

import pytest

from service.domain.metric_point import MetricPoint
from service.queue import metric_stream
from worker.publisher import MetricPublisher


def points(n: int, start: int = 1) -> list[MetricPoint]:
    return [
        MetricPoint(
            batch=b,
            loss=1 / b,
            accuracy=b / (n + start),
            elapsed_s=b * 0.01,
            **({"val_loss": 0.5, "val_accuracy": 0.9} if b % 5 == 0 else {}),
        )
        for b in range(start, start + n)
    ]


def test_published_points_are_read_back_in_order_exactly_once_with_the_cursor(redis):
    job_id = str(uuid.uuid4())
    with MetricPublisher(redis, job_id, retention_s=60) as publisher:
        for point in points(100):
            publisher.publish(point)
    received, cursor = [], None
    while True:
        page, cursor = metric_stream.read(redis, job_id, cursor, limit=7)
        if not page:
            break
        received += [point for _, point in page]
    assert received == points(100)
    assert 0 < redis.ttl(metric_stream.stream_key(job_id)) <= 60


def test_a_resend_does_not_duplicate_points(redis):
    job_id = str(uuid.uuid4())
    with MetricPublisher(redis, job_id, retention_s=60) as publisher:
        for point in points(3):
            publisher.publish(point)
    with MetricPublisher(redis, job_id, retention_s=60) as publisher:  # as after a half-applied pipeline
        for point in points(5):
            publisher.publish(point)
    assert [p.batch for _, p in metric_stream.read(redis, job_id, None, 100)[0]] == [1, 2, 3, 4, 5]


def test_points_published_before_an_error_are_kept(redis):
    job_id = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        with MetricPublisher(redis, job_id, retention_s=60) as publisher:
            for point in points(4):
                publisher.publish(point)
            raise RuntimeError("training blew up")
    assert len(metric_stream.read(redis, job_id, None, 100)[0]) == 4


def test_the_cursor_of_an_empty_page_is_the_one_given(redis):
    assert metric_stream.read(redis, str(uuid.uuid4()), None, 10) == ([], "0-0")
    assert metric_stream.read(redis, str(uuid.uuid4()), "1-5", 10) == ([], "1-5")


def test_latest_many_in_one_round_trip(redis):
    job_ids = [str(uuid.uuid4()) for _ in range(2)]
    with MetricPublisher(redis, job_ids[0], retention_s=60) as publisher:
        for point in points(3):
            publisher.publish(point)
    assert metric_stream.latest_many(redis, job_ids) == [points(3)[-1], None]
