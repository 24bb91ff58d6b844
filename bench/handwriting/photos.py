"""The ``photos`` set: digits of the ``fonts`` and ``pad`` sets as a phone would photograph them on paper: tinted
paper, ink of a pen's colour, a slight turn, uneven light (a gradient across the page, darker corners, the soft
edge of a shadow), blur, sensor noise and JPEG compression. For each digit, a seeded choice of pictures from each
set (a font family or a drawing once at most)."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from service.evaluation.sets import load, write_labels
from service.serving.images import NoDigitFound, decode_image, to_mnist

PER_DIGIT = {"fonts": 15, "pad": 15}  # photos of each digit made from each set's pictures
PENS = np.array([[20, 20, 25], [20, 35, 110], [40, 40, 40], [60, 30, 20]])  # black, blue, pencil grey, brown


def coverage(picture: Image.Image) -> np.ndarray:
    """Where the ink is, 0..1, cropped to it with a margin: light ink on dark (the pad) or dark on light (fonts)."""
    gray = np.asarray(picture.convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background, ink = np.median(border), (gray.max() if np.median(border) < 128 else gray.min())
    covered = np.clip((gray - background) / (ink - background), 0, 1)
    rows, cols = np.nonzero(covered > 0.2)
    margin = max(2, (rows.max() - rows.min()) // 5)
    top, left = max(0, rows.min() - margin), max(0, cols.min() - margin)
    return covered[top : rows.max() + margin + 1, left : cols.max() + margin + 1]


def photograph(ink: np.ndarray, random: np.random.Generator) -> bytes:
    """A JPEG photo of the ink (0..1, cropped) on paper, with every defect drawn at random."""
    height = int(random.integers(40, 120))  # the photo's crop around the digit, in pixels
    width = max(8, round(ink.shape[1] * height / ink.shape[0] * random.uniform(0.9, 1.3)))
    layer = Image.fromarray((ink * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    layer = layer.rotate(float(random.uniform(-8, 8)), Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    covered = np.asarray(layer, dtype=np.float32)[..., None] / 255

    paper = np.array([240, 234, 218]) + random.uniform(-40, 15) + random.uniform(-8, 8, 3)  # white, cream or grey
    pen = PENS[random.integers(len(PENS))] + random.uniform(0, 40, 3)
    colour = paper * (1 - covered) + pen * covered
    rows, cols = np.mgrid[0 : colour.shape[0], 0 : colour.shape[1]].astype(np.float32)
    rows, cols = rows / colour.shape[0] - 0.5, cols / colour.shape[1] - 0.5
    angle, edge = random.uniform(0, 2 * np.pi), random.uniform(0, 2 * np.pi)
    light = 1 - random.uniform(0.1, 0.5) * (0.5 + rows * np.sin(angle) + cols * np.cos(angle))  # from one side
    light *= 1 - random.uniform(0, 0.3) * (rows**2 + cols**2) * 2  # darker corners
    across = (rows * np.sin(edge) + cols * np.cos(edge) - random.uniform(0.2, 0.6)) / random.uniform(0.05, 0.2)
    light *= 1 - random.uniform(0, 0.3) / (1 + np.exp(-across))  # the soft edge of a shadow over a corner
    picture = Image.fromarray(np.clip(colour * light[..., None], 0, 255).astype(np.uint8), "RGB")
    picture = picture.filter(ImageFilter.GaussianBlur(float(random.uniform(0.3, 1.8))))
    noisy = np.asarray(picture, dtype=np.float32) + random.normal(0, random.uniform(2, 9), (*colour.shape[:2], 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(
        buffer, "JPEG", quality=int(random.integers(30, 86))
    )
    return buffer.getvalue()


def generate(sets_dir: Path, folder: Path, seed: int) -> None:
    random = np.random.default_rng(seed)
    rows = []
    for name, per_digit in PER_DIGIT.items():
        source = load(name, sets_dir)
        for digit in range(10):
            chosen = random.choice(np.flatnonzero(source.labels == digit), size=per_digit, replace=False)
            for index in sorted(chosen):
                ink = coverage(Image.open(io.BytesIO(source.pictures[index])))
                file = f"photo-{Path(source.files[index]).stem}.jpg"
                (folder / file).write_bytes(_photo_with_a_digit(ink, random))
                rows.append((file, digit, f"{name}: {source.sources[index]}"))
    write_labels(folder, sorted(rows))


def _photo_with_a_digit(ink: np.ndarray, random: np.random.Generator) -> bytes:
    """A photo in which the service's preparation finds a digit: drawn again (rarely) while it finds none."""
    while True:
        photo = photograph(ink, random)
        try:
            to_mnist(decode_image(photo))
        except NoDigitFound:
            continue
        return photo
