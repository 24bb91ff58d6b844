"""The evaluation sets: pictures of digits as users send them, with their labels, committed under ``sets/``.

Each set is a folder of picture files and a ``labels.csv`` (``file,digit,source``: the source says what made the
picture: the stroke shape drawn on the pad, the font family, or for a photo which of these it shows). They are
made by ``python -m bench.handwriting`` (fixed seeds); loading them needs nothing but the files.

- ``pad``: digits drawn on the dashboard's pad in Chromium by scripted pointer strokes (PNG, as the pad sends them),
- ``fonts``: 0-9 in each suitable font family of Debian's font packages, dark on light (PNG),
- ``photos``: digits of both other sets as photographed on paper: uneven light, tinted paper, noise, blur, a slight
  turn, JPEG compression.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SETS_DIR = Path(__file__).resolve().parent / "sets"
SET_NAMES = ("pad", "fonts", "photos")
LABELS_FILE = "labels.csv"


class UnknownSet(LookupError):
    pass


@dataclass(frozen=True)
class EvaluationSet:
    """One set: its pictures (the files' bytes), their digits and what made each."""

    name: str
    pictures: list[bytes]
    labels: np.ndarray  # int64 (N,)
    sources: list[str]
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load(name: str, sets_dir: Path = SETS_DIR) -> EvaluationSet:
    """The set called `name` (one of SET_NAMES, or any folder of `sets_dir` with a labels.csv)."""
    folder = sets_dir / name
    try:
        with (folder / LABELS_FILE).open(newline="") as labels:
            rows = list(csv.DictReader(labels))
    except FileNotFoundError:
        raise UnknownSet(f"no evaluation set {name!r} in {sets_dir} (sets: {', '.join(available(sets_dir))})") from None
    return EvaluationSet(
        name=name,
        pictures=[(folder / row["file"]).read_bytes() for row in rows],
        labels=np.array([int(row["digit"]) for row in rows], dtype=np.int64),
        sources=[row["source"] for row in rows],
        files=[row["file"] for row in rows],
    )


def available(sets_dir: Path = SETS_DIR) -> list[str]:
    """The sets present, SET_NAMES' order first."""
    present = {p.parent.name for p in sets_dir.glob(f"*/{LABELS_FILE}") if not p.parent.name.startswith(".")}
    return [name for name in SET_NAMES if name in present] + sorted(present - set(SET_NAMES))


def write_labels(folder: Path, rows: list[tuple[str, int, str]]) -> None:
    """Write a set's labels.csv: (file, digit, source) per picture (for the generators)."""
    with (folder / LABELS_FILE).open("w", newline="") as labels:
        writer = csv.writer(labels, lineterminator="\n")
        writer.writerow(["file", "digit", "source"])
        writer.writerows(rows)
