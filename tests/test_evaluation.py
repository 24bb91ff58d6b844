"""The evaluation sets (digits that are not MNIST's, as pictures) and `mnist-service evaluate`: the sets load with
their labels, each picture is read as POST /predict reads it, the scores count right, and the command prints and
writes its tables."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from service.domain.model_store import load_network
from service.evaluation import report, sets
from service.evaluation.scoring import prepare, score
from service.launcher.cli import main
from tests.helpers import add_model

EXPECTED = {  # the generators' counts (bench/handwriting): pictures of each digit
    "pad": 30,  # each of the digit's 2 to 5 shapes, 6 to 15 times
    "photos": 30,
}


@pytest.mark.parametrize("name", sets.SET_NAMES)
def test_each_set_has_every_digit_with_its_pictures_and_sources(name):
    evaluation_set = sets.load(name)
    counts = np.bincount(evaluation_set.labels, minlength=10)
    if name == "fonts":  # the ten digits of each family
        families = set(evaluation_set.sources)
        assert len(families) >= 150 and {"DejaVu Sans", "Liberation Serif", "Comic Neue"} <= families
        assert counts.tolist() == [len(families)] * 10
    else:
        assert counts.tolist() == [EXPECTED[name]] * 10
    assert len(evaluation_set.pictures) == len(evaluation_set) and all(evaluation_set.sources)
    # The file names say the digit too (pad-3-07.png, dejavu-sans-3.png, photo-dejavu-sans-3.jpg).
    assert all(f"-{digit}" in file for file, digit in zip(evaluation_set.files, evaluation_set.labels, strict=True))


def test_an_unknown_set_is_refused_by_name():
    with pytest.raises(sets.UnknownSet, match=r"no evaluation set 'scans' .* \(sets: pad, fonts, photos\)"):
        sets.load("scans")


def test_scoring_reads_each_picture_as_post_predict_does(api):
    """An untrained model gives the same probabilities for each picture scored here as over HTTP: they are
    arbitrary, so they agree only if the pictures are prepared the same way."""
    model_id = add_model(api.model_dir, month=3)
    network, _ = load_network(api.model_dir, model_id)
    for name in sets.SET_NAMES:
        evaluation_set = sets.load(name)
        picked = list(range(0, len(evaluation_set), max(1, len(evaluation_set) // 12)))[:12]
        files = [("file", (evaluation_set.files[i], evaluation_set.pictures[i])) for i in picked]
        with api.client() as client:
            answer = client.post("/predict", params={"model_id": model_id}, files=files)
        assert answer.status_code == 200, answer.text
        over_http = np.array([p["probabilities"] for p in answer.json()["predictions"]])
        inputs = prepare(replace(evaluation_set, pictures=[evaluation_set.pictures[i] for i in picked]))
        with torch.inference_mode():
            here = torch.softmax(network(torch.from_numpy(inputs).unsqueeze(1)), dim=1).numpy()
        np.testing.assert_allclose(here, over_http, atol=1e-6, err_msg=name)
        assert np.ptp(here, axis=0).max() > 1e-3, "probabilities alike for every picture would prove nothing"


class Oracle(nn.Module):
    """Reads each prepared picture as the answer it was given for it: the true digit, except 7s read as 1s."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))  # a parameter, so that it has a device
        self.answers = {
            image.tobytes(): 1 if label == 7 else int(label) for image, label in zip(inputs, labels, strict=True)
        }

    def forward(self, x):
        digits = [self.answers[image.numpy().tobytes()] for image in x[:, 0]]
        return nn.functional.one_hot(torch.tensor(digits), 10).float() * self.scale


def test_the_score_counts_each_digit_and_each_confusion():
    pad = sets.load("pad")
    inputs = prepare(pad)
    oracle = Oracle(inputs, pad.labels).train()
    result = score(oracle, pad, inputs)
    sevens = int((pad.labels == 7).sum())
    assert result.count == len(pad) and result.accuracy == pytest.approx(1 - sevens / len(pad))
    assert result.confusion[7, 1] == sevens and result.confusion[1, 1] == (pad.labels == 1).sum()
    assert np.trace(result.confusion) == len(pad) - sevens
    assert result.per_digit[7] == 0 and (np.delete(result.per_digit, 7) == 1).all()
    assert oracle.training, "the network is given back in the mode it came in"


def test_evaluate_prints_each_models_scores_and_writes_the_table_and_picture(tmp_path, capsys):
    model_dir = tmp_path / "models"
    first, second = add_model(model_dir, month=1), add_model(model_dir, month=2)
    markdown, picture = tmp_path / "handwriting.md", tmp_path / "confusion.png"
    markdown.write_text(f"# Title\n\n{report.TABLE_BEGIN}\nold\n{report.TABLE_END}\n\nText after.\n")

    main(
        [
            "evaluate",
            "--model-dir",
            str(model_dir),
            "--set",
            "pad",
            "--markdown",
            str(markdown),
            "--picture",
            str(picture),
        ]
    )
    out = capsys.readouterr().out

    for model_id in (first, second):
        assert f"model {model_id}: preset tutorial, MNIST test" in out
    assert out.count("pad: confusion matrix") == 2
    summary = out.split("\n\n")[-1].splitlines()
    assert summary[0].split() == ["preset", "model", "MNIST", "test", "pad"]
    assert [line.split()[1] for line in summary[1:3]] == [second, first]  # the store's order: newest first
    table = markdown.read_text()
    assert table.startswith("# Title\n") and table.endswith("Text after.\n") and "old" not in table
    assert "| Preset | Model | Trained in | MNIST test | pad (300) |" in table and f"`{first}`" in table
    assert Image.open(picture).size == (36 + 1 * (220 + 36), 36 + 2 * (220 + 72))


def test_evaluate_names_what_it_cannot_find(tmp_path, capsys):
    model_dir = tmp_path / "models"
    with pytest.raises(SystemExit, match=r"no model in \S+models: train one"):
        main(["evaluate", "--model-dir", str(model_dir)])
    add_model(model_dir)
    with pytest.raises(SystemExit, match="no model 20260101T000000Z-00000000 in"):
        main(["evaluate", "--model-dir", str(model_dir), "20260101T000000Z-00000000"])
    with pytest.raises(SystemExit, match="no evaluation set 'scans'"):
        main(["evaluate", "--model-dir", str(model_dir), "--set", "scans"])
