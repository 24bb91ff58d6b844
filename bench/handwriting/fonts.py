"""The ``fonts`` set: 0-9 typed in every suitable font family installed (Debian's font packages, found with
fontconfig's ``fc-list``), one regular face per family, dark on light at a size a screenshot or a scan would have.

Which families are suitable is decided here, by rule: outline fonts with Latin letters and digits (symbol, dingbat
and other-script fonts have none), whose name says nothing of a decorative variant (outlined, dotted, ruled,
sketched or inverted letters, keycaps, symbols), that NOT_DIGITS does not name, whose ten digits all show ink and
differ from each other, and whose digits are not those of a family already taken (many Noto families carry Noto
Sans's Latin glyphs).
"""

import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from service.evaluation.sets import write_labels
from service.serving.images import to_mnist

LATIN_AND_DIGITS = ":charset=30-39 41-5a 61-7a:outline=true"
# Families whose digits are not plain digits by their name: symbols, decorations, or letters drawn as outlines,
# dots or with ruled lines (school fonts), keycaps, phonetic alphabets.
NOT_PLAIN = re.compile(
    r"symbol|dingbat|emoji|icon|math|music|phonet|outline|keyboard|punteada|pautada|guiada|shadow|inline|"
    r"blackletter|fraktur|dseg|segment|sketch|inverted",
    re.IGNORECASE,
)
# ... and those whose names do not say so, looked at one by one.
NOT_DIGITS = {
    "D050000L": "URW's dingbats: arrows and ticks in place of the digits",
    "femkeklaver": "hollow letters",
    "It wasn't me": "digits drawn as boxes (its 0 and 8 are rectangles)",
}
# The first names only; a record ends in a form feed, since a style name may hold a newline (Century Catalogue).
FIELDS = "%{family[0]}\t%{style[0]}\t%{file}\t%{index}\t%{weight}\t%{slant}\t%{width}\f"
REGULAR_WEIGHT = 80  # fontconfig's weight of a regular face (bold is 200)
SAME_DIGITS = 4.0  # mean absolute difference, in grey levels of the 28x28 digits, under which two families match


@dataclass(frozen=True)
class Face:
    family: str
    file: str
    index: int
    style: str


def faces() -> list[Face]:
    """The regular upright face of each installed family with Latin letters and digits, by family name."""
    listing = subprocess.run(
        ["fc-list", "--format", FIELDS, LATIN_AND_DIGITS], capture_output=True, text=True, check=True
    ).stdout
    best: dict[str, tuple[tuple, Face]] = {}
    for record in listing.split("\f")[:-1]:
        family, style, file, index, weight, slant, width = (field.strip() for field in record.split("\t"))
        if NOT_PLAIN.search(style):  # the family's outlined or inverted face: its regular one may be plain
            continue
        rank = (
            _number(slant) != 0,  # upright first
            abs(_number(width) - 100),  # then normal width
            abs(_number(weight) - REGULAR_WEIGHT),  # then regular weight
            style,
            file,
        )
        face = Face(family, file, int(index or 0), style)
        if family not in best or rank < best[family][0]:
            best[family] = (rank, face)
    return [face for _, face in sorted(best.values(), key=lambda item: item[1].family.lower())]


def _number(value: str) -> float:
    """A number of fc-list's; for a variable font's range, "[50 200]", its lower end (its named instances, such as
    the regular one, are listed besides)."""
    return float(value.strip("[]").split()[0]) if value.strip("[]") else 0.0


def render(face: Face, digit: int, size: int, ink: int, paper: int, margins: tuple[int, int, int, int]) -> Image.Image:
    """`digit` in `face` at `size` pixels a em, `ink` on `paper` (grey levels), with margins (left, top, right,
    bottom) around its glyph's box."""
    font = ImageFont.truetype(face.file, size, index=face.index)
    left, top, right, bottom = font.getbbox(str(digit))
    width = right - left + margins[0] + margins[2]
    height = bottom - top + margins[1] + margins[3]
    picture = Image.new("L", (max(1, width), max(1, height)), paper)
    ImageDraw.Draw(picture).text((margins[0] - left, margins[1] - top), str(digit), fill=ink, font=font)
    return picture


def suitable(face: Face, seen: list[np.ndarray]) -> tuple[bool, str, np.ndarray | None]:
    """Whether the family's digits are taken, why not if not, and its ten digits as the network would see them."""
    if NOT_PLAIN.search(face.family):
        return False, "a decorative or symbol family by its name", None
    if face.family in NOT_DIGITS:
        return False, NOT_DIGITS[face.family], None
    try:
        digits = np.stack([to_mnist(render(face, d, 48, 0, 255, (8, 8, 8, 8))).astype(np.float32) for d in range(10)])
    except (OSError, ValueError) as error:  # no ink (NoDigitFound is a ValueError), or a font Pillow cannot read
        return False, f"its digits do not render: {error}", None
    flat = digits.reshape(10, -1)
    differences = np.abs(flat[:, None] - flat[None]).mean(axis=2)
    if (differences + np.eye(10) * 255 < SAME_DIGITS).any():
        return False, "two of its digits are the same glyph", None
    for other in seen:
        if np.abs(other - digits).mean() < SAME_DIGITS:
            return False, "the same digits as a family already taken", None
    return True, "", digits


def generate(folder: Path, seed: int) -> list[str]:
    """Write the set into `folder` (empty); the report of which families were left out and why."""
    random = np.random.default_rng(seed)
    rows, report, seen = [], [], []
    for face in faces():
        ok, reason, digits = suitable(face, seen)
        if not ok:
            report.append(f"left out {face.family} ({Path(face.file).name}): {reason}")
            continue
        seen.append(digits)
        slug = re.sub(r"[^a-z0-9]+", "-", face.family.lower()).strip("-")
        for digit in range(10):
            size = int(random.integers(24, 72))  # pixels a em: screen text to a close-up scan
            margins = tuple(int(m) for m in random.integers(size // 8, size // 2, 4))
            ink, paper = int(random.integers(0, 70)), int(random.integers(200, 256))
            name = f"{slug}-{digit}.png"
            buffer = io.BytesIO()
            render(face, digit, size, ink, paper, margins).save(buffer, "PNG", optimize=True)
            (folder / name).write_bytes(buffer.getvalue())
            rows.append((name, digit, face.family))
    write_labels(folder, rows)
    return report
