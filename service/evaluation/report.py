"""How models read the evaluation sets, for people: text for a terminal, a markdown table for docs/, and a picture
of the confusion matrices (drawn with Pillow)."""

import math
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from service.evaluation.scoring import DIGITS, ModelScores, Score

TABLE_BEGIN = "<!-- mnist-service evaluate: begin -->"
TABLE_END = "<!-- mnist-service evaluate: end -->"


def model_label(result: ModelScores) -> str:
    return f"{result.metadata.config.preset} {result.metadata.id}"


def text(result: ModelScores) -> str:
    """One model: accuracy per set and per digit, and each set's confusion matrix."""
    metadata = result.metadata
    lines = [
        f"model {metadata.id}: preset {metadata.config.preset}, MNIST test {metadata.test_accuracy:.2%}, "
        f"trained in {metadata.train_seconds:.0f} s on {metadata.device}",
        _table(
            ["set", "images", "accuracy", *map(str, range(DIGITS))],
            [
                [
                    s.set_name,
                    str(s.count),
                    f"{s.accuracy:.2%}",
                    *("-" if math.isnan(a) else f"{a:.0%}" for a in s.per_digit),
                ]
                for s in result.scores
            ],
        ),
    ]
    for score in result.scores:
        lines += ["", f"{score.set_name}: confusion matrix, a row per true digit, a column per digit read"]
        lines.append(
            _table(["", *map(str, range(DIGITS))], [[str(d), *map(str, row)] for d, row in enumerate(score.confusion)])
        )
    return "\n".join(lines)


def summary(results: list[ModelScores]) -> str:
    """Every model's accuracy on each set, a line each."""
    return _table(
        ["preset", "model", "MNIST test", *(score.set_name for score in results[0].scores)],
        [
            [
                r.metadata.config.preset,
                r.metadata.id,
                f"{r.metadata.test_accuracy:.2%}",
                *(f"{s.accuracy:.2%}" for s in r.scores),
            ]
            for r in results
        ],
    )


def markdown_table(results: list[ModelScores]) -> str:
    """The accuracies as a markdown table: a row per model, a column per set."""
    scores = results[0].scores
    header = ["Preset", "Model", "Trained in", "MNIST test", *(f"{s.set_name} ({s.count:,})" for s in scores)]
    rows = [
        [
            f"`{r.metadata.config.preset}`",
            f"`{r.metadata.id}`",
            f"{r.metadata.train_seconds:.0f} s ({r.metadata.device})",
            f"{r.metadata.test_accuracy:.2%}",
            *(f"{s.accuracy:.1%}" for s in r.scores),
        ]
        for r in results
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_markdown(path: Path, table: str) -> None:
    """Put `table` between the markers in `path` (kept with the text around them), or at the end of it."""
    block = f"{TABLE_BEGIN}\n{table}\n{TABLE_END}"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), re.DOTALL)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else f"{old.rstrip()}\n\n{block}\n".lstrip()
    path.write_text(new)


_CELL = 22  # pixels a cell of a matrix
_GAP = 36


def confusion_picture(results: list[ModelScores]) -> Image.Image:
    """The confusion matrices, a row of them per model and a column per set: green where a digit was read right,
    red where it was misread, deeper the larger the share of that digit's pictures."""
    font = ImageFont.load_default(13)
    small = ImageFont.load_default(10)
    side = _CELL * DIGITS
    columns, rows = len(results[0].scores), len(results)
    picture = Image.new("RGB", (_GAP + columns * (side + _GAP), _GAP + rows * (side + 2 * _GAP)), "white")
    draw = ImageDraw.Draw(picture)
    for row, result in enumerate(results):
        top = _GAP + row * (side + 2 * _GAP)
        draw.text((_GAP, top - _GAP + 4), model_label(result), fill="black", font=font)
        for column, score in enumerate(result.scores):
            left = _GAP + column * (side + _GAP)
            draw.text((left, top - 16), f"{score.set_name}: {score.accuracy:.1%}", fill="black", font=font)
            _matrix(draw, score, left, top + 4, small)
    return picture


def _matrix(draw: ImageDraw.ImageDraw, score: Score, left: int, top: int, font: ImageFont.ImageFont) -> None:
    totals = np.maximum(score.confusion.sum(axis=1, keepdims=True), 1)
    shares = score.confusion / totals
    for true in range(DIGITS):
        draw.text((left - 12, top + true * _CELL + 5), str(true), fill="gray", font=font)
        draw.text((left + true * _CELL + 8, top + DIGITS * _CELL + 2), str(true), fill="gray", font=font)
        for read in range(DIGITS):
            depth = shares[true, read] ** 0.5  # small confusions stay visible
            hue = (0, 150, 60) if true == read else (200, 30, 30)
            fill = tuple(round(255 - (255 - c) * depth) for c in hue)
            box = (left + read * _CELL, top + true * _CELL, left + (read + 1) * _CELL - 1, top + (true + 1) * _CELL - 1)
            draw.rectangle(box, fill=fill, outline=(230, 230, 230))
            if count := score.confusion[true, read]:
                ink = "white" if depth > 0.6 else "black"
                draw.text((box[0] + _CELL / 2, box[1] + _CELL / 2), str(count), fill=ink, font=font, anchor="mm")


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Columns as wide as their widest cell: the first to the left, numbers to the right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    )
