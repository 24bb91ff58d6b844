"""The commands that talk to a running server over HTTP (never to Redis): train, jobs, cancel, models, default,
predict."""

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from service.client.sdk import DEFAULT_URL, Client, ServiceError, seen_png
from service.schemas.jobs import Job


def add_commands(commands: argparse._SubParsersAction) -> None:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        default=os.environ.get("MNIST_URL", DEFAULT_URL),
        help=f"the server (env MNIST_URL; default {DEFAULT_URL})",
    )
    server.add_argument(
        "--api-key",
        default=os.environ.get("MNIST_API_KEY"),
        help="the server's API key, if it has one (env MNIST_API_KEY)",
    )

    train_parser = commands.add_parser("train", parents=[server], help="queue a training job (and watch it learn)")
    train_parser.add_argument("--preset", help="a named configuration, e.g. tutorial")
    train_parser.add_argument(
        "--set",
        dest="fields",
        action="append",
        default=[],
        type=_field,
        metavar="KEY=VALUE",
        help="a config field, its value in JSON: --set learning_rate=0.01 --set conv_filters=[16,32]",
    )
    train_parser.add_argument(
        "--watch", action="store_true", help="follow the job until it ends; the exit status says how it ended"
    )
    train_parser.set_defaults(func=train)

    commands.add_parser("jobs", parents=[server], help="list training jobs, newest first").set_defaults(func=jobs)
    cancel_parser = commands.add_parser("cancel", parents=[server], help="cancel a queued or running job")
    cancel_parser.add_argument("job_id")
    cancel_parser.set_defaults(func=cancel)
    commands.add_parser("models", parents=[server], help="list trained models, newest first").set_defaults(func=models)
    default_parser = commands.add_parser(
        "default", parents=[server], help="make a model the one predict uses when none is named"
    )
    default_parser.add_argument("model_id", metavar="MODEL_ID")
    default_parser.set_defaults(func=choose_default)
    predict_parser = commands.add_parser("predict", parents=[server], help="the digit in each picture")
    predict_parser.add_argument("images", nargs="+", metavar="IMAGE")
    predict_parser.add_argument(
        "--save-seen",
        type=Path,
        metavar="DIR",
        help="save the 28x28 image the model saw for each picture into DIR, as <n>-<picture's name>.png",
    )
    predict_parser.set_defaults(func=predict)


def train(args: argparse.Namespace) -> None:
    config = dict(args.fields) | ({"preset": args.preset} if args.preset else {})
    with _connect(args) as client:
        job = _or_exit(client.train, config)
        print(job.id, flush=True)
        if not args.watch:
            return
        try:
            final = _or_exit(_follow, client, job)
        except KeyboardInterrupt:
            sys.exit(f"\nstopped watching; the job goes on (mnist-service cancel {job.id} stops it)")
    if final.status != "succeeded":  # failed or canceled: exit status 1, with the reason
        sys.exit(f"{final.status}: {final.error}")


def jobs(args: argparse.Namespace) -> None:
    with _connect(args) as client:
        listing = _or_exit(client.jobs)
    _table(
        ["JOB", "STATUS", "BATCH", "TEST ACC", "CREATED"],
        [
            [
                job.id,
                job.status,
                f"{job.progress.batch}/{job.progress.total_batches}",
                _percent(job.test_accuracy),
                f"{job.created_at:%Y-%m-%dT%H:%M:%S}" if job.created_at else "-",
            ]
            for job in listing.jobs
        ],
    )


def cancel(args: argparse.Namespace) -> None:
    with _connect(args) as client:
        print(_or_exit(client.cancel, args.job_id).status)


def models(args: argparse.Namespace) -> None:
    with _connect(args) as client:
        listing = _or_exit(client.models)
    _table(
        ["", "MODEL", "TEST ACC", "NETWORK AND TRAINING"],
        [
            [
                "*" if model.id == listing.default.model_id else "",
                model.id,
                _percent(model.test_accuracy),
                model.summary,
            ]
            for model in listing.models
        ],
    )


def choose_default(args: argparse.Namespace) -> None:
    with _connect(args) as client:
        print(f"default: {_or_exit(client.choose_default, args.model_id).model_id}")


def predict(args: argparse.Namespace) -> None:
    with _connect(args) as client:
        answer = _or_exit(client.predict, args.images, None, args.save_seen is not None)
    for number, (image, prediction) in enumerate(zip(args.images, answer.predictions, strict=True), 1):
        line = f"{image}: {prediction.digit} ({_percent(prediction.confidence)})"
        if args.save_seen is not None:
            # Numbered: pictures of the same name from different folders stay apart.
            seen = args.save_seen / f"{number}-{Path(image).stem}.png"
            seen.parent.mkdir(parents=True, exist_ok=True)
            seen.write_bytes(seen_png(prediction))
            line += f"  saw: {seen}"
        print(line)


def _follow(client: Client, job: Job) -> Job:
    """Show the job's progress until it ends; the final job. A line per test evaluation stays on screen;
    on a terminal one more line is rewritten at every batch."""
    live = sys.stdout.isatty()
    total = job.progress.total_batches
    for event in client.events(job.id):
        if event.name == "status":
            print(f"\r\033[K{event.data['status']}" if live else event.data["status"], flush=True)
        elif event.name == "metric":
            line = _progress(event.data, total)
            if "val_accuracy" in event.data:
                print(f"\r\033[K{line}" if live else line, flush=True)
            elif live:
                print(f"\r\033[K{line}", end="", flush=True)
    final = Job.model_validate(event.data)  # the stream's last event is always the end, which carries the final job
    if final.status == "succeeded":
        print(f"model {final.model_id}: test accuracy {_percent(final.test_accuracy)} on 10,000 images")
    return final


def _progress(point: dict[str, Any], total: int) -> str:
    batch = f"{point['batch']:>{len(str(total))}}/{total}"
    line = f"batch {batch}  loss {point['loss']:.4f}  accuracy {point['accuracy']:.3f}"
    if "val_accuracy" in point:
        line += f"  val_loss {point['val_loss']:.4f}  val_accuracy {point['val_accuracy']:.3f}"
    return line


def _field(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as JSON (a bare word that is not JSON is a string: --set optimizer=adam)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _connect(args: argparse.Namespace) -> Client:
    # The user reads answers, not a log line per HTTP request (httpx logs each one at INFO).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Client(args.url, api_key=args.api_key)


def _or_exit(call, *args):
    """The call's answer; on a service error, the server's message and exit status 1."""
    try:
        return call(*args)
    except ServiceError as error:
        sys.exit(f"error: {error}")


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.2%}"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
