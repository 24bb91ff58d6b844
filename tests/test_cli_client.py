"""The client commands (`train`, `jobs`, `models`, `default`, `predict`, `cancel`) as a user runs them: real processes
talking HTTP to the API (served in the test process) and the session's worker."""

import re
import shutil

from PIL import Image

from service.domain.mnist import load_mnist
from service.launcher.cli import build_parser
from tests.helpers import cli, free_port

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_set_reads_values_as_json_and_bare_words_as_strings():
    args = build_parser().parse_args(
        [
            "train",
            "--set",
            "conv_filters=[16,32]",
            "--set",
            "learning_rate=0.01",
            "--set",
            "optimizer=adam",
            "--set",
            "batch_norm=true",
        ]
    )
    assert dict(args.fields) == {
        "conv_filters": [16, 32],
        "learning_rate": 0.01,
        "optimizer": "adam",
        "batch_norm": True,
    }


def test_train_watch_shows_progress_until_the_model_and_exits_0(service, worker):
    done = cli("train", "--watch", "--set", "train_batches=20", "--set", "seed=7", url=service.url)
    assert done.returncode == 0, done.stderr + worker.output()
    lines = done.stdout.splitlines()
    assert re.fullmatch(UUID, lines[0])  # the job id first, so scripts can take it
    progress = [line for line in lines if line.startswith("batch")]
    assert [int(re.match(r"batch\s+(\d+)/20", line)[1]) for line in progress] == [5, 10, 15, 20]
    assert all(
        re.search(r"loss \d\.\d{4}  accuracy \d\.\d{3}  val_loss \d+\.\d{4}  val_accuracy \d\.\d{3}$", line)
        for line in progress
    )
    assert "succeeded" in lines
    assert re.fullmatch(r"model \S+: test accuracy \d+\.\d\d% on 10,000 images", lines[-1])

    listed = cli("jobs", url=service.url)
    assert listed.returncode == 0 and lines[0] in listed.stdout
    assert re.search(rf"{lines[0]}\s+succeeded\s+20/20\s+\d+\.\d\d%", listed.stdout)
    model_id = lines[-1].split()[1].rstrip(":")
    models = cli("models", url=service.url)
    assert models.returncode == 0 and model_id in models.stdout


def test_train_without_watch_prints_only_the_job_id(api):
    done = cli("train", "--preset", "tutorial", "--set", "train_batches=1", url=api.url)
    assert done.returncode == 0 and re.fullmatch(UUID, done.stdout.strip())


def test_a_refused_config_exits_non_zero_with_the_servers_message(api):
    done = cli("train", "--watch", "--set", "learning_rate=-1", url=api.url)
    assert done.returncode == 1 and done.stdout == ""
    assert "learning_rate: Input should be greater than 0" in done.stderr


def test_a_job_that_fails_exits_non_zero_with_its_error(service):
    # A config that diverges on any device (a CPU or a GPU machine): momentum at learning rate 10.
    diverging = ["learning_rate=10", "optimizer=momentum", "batch_norm=true", "hidden_units=1024", "seed=1"]
    done = cli("train", "--watch", *(f"--set={field}" for field in diverging), url=service.url)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("failed: training diverged: "), done.stderr


def test_predict_prints_the_digit_and_confidence_of_each_file_and_saves_what_the_model_saw(
    serve_api, trained_model, shared_settings, tmp_path
):
    # A store whose one model is the session's trained model, copied in by hand: no default until one is chosen.
    shutil.copytree(shared_settings.model_dir / trained_model, tmp_path / "models" / trained_model)
    api = serve_api(model_dir=tmp_path / "models")
    mnist = load_mnist(shared_settings.data_dir)
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"digit-{mnist.test_labels[index]}.png")
        Image.fromarray(mnist.test_images[index]).resize((112, 112)).save(paths[-1])
    refused = cli("predict", str(paths[0]), url=api.url)
    assert refused.returncode == 1 and "error: no default model yet: choose one" in refused.stderr
    chosen = cli("default", trained_model, url=api.url)
    assert chosen.returncode == 0 and chosen.stdout == f"default: {trained_model}\n", chosen.stderr

    done = cli("predict", *map(str, paths), "--save-seen", str(tmp_path / "seen"), url=api.url)
    assert done.returncode == 0, done.stderr
    for number, (path, line) in enumerate(zip(paths, done.stdout.splitlines(), strict=True), 1):
        seen = tmp_path / "seen" / f"{number}-{path.stem}.png"
        found = re.fullmatch(rf"{re.escape(str(path))}: (\d) \((\d+\.\d\d)%\)  saw: {re.escape(str(seen))}", line)
        assert found, line
        with Image.open(seen) as picture:
            assert (picture.format, picture.mode, picture.size) == ("PNG", "L", (28, 28))
    # The model reads the first test digits (7, 2, 1) right.
    assert [line.split(": ")[1].split()[0] for line in done.stdout.splitlines()] == ["7", "2", "1"]
    assert cli("default", "20260101T000000Z-00000000", url=api.url).stderr.startswith("error: no model")


def test_an_unreachable_server_is_a_clear_error():
    done = cli("jobs", url=f"http://127.0.0.1:{free_port()}", timeout=30)
    assert done.returncode == 1 and done.stderr.startswith("error: cannot reach http://127.0.0.1:")
