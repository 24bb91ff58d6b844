"""Turn uploaded pictures and JSON pixel grids into the 28x28 digits the network knows.

MNIST digits were made by scaling each (binary) NIST digit to fit a 20x20 box, keeping its
aspect ratio (anti-aliasing gives the grey levels), and pasting it into a 28x28 field so that
its centre of mass lies on pixel (14, 14): light ink on a black background. `to_mnist`
repeats that recipe for real pictures: canvas drawings, scans and phone photos of dark ink
on unevenly lit paper.

Every failure is an `ImageError`: its message is meant for the user and `status_code` is the
HTTP status to answer with:

* 415 `UndecodableImage`: empty, unrecognised, unsupported, corrupt or truncated data (a cut-off
  upload cannot be told from a corrupt one, so both get 415),
* 413 `ImageTooLarge`: the declared size is over the pixel limit (checked before decoding),
* 422 `NoDigitFound`: nothing stands out from the background,
* 422 `BadPixels`: a JSON pixel grid of the wrong shape or with bad values.
"""

import io
import numbers
import struct
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Only plain raster formats: Pillow's other plugins (EPS runs Ghostscript, ...) are attack surface.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")  # JPEG includes MPO
_WORK = 512  # pictures are shrunk early, but their shorter side kept >= this: a digit filling
#              only part of a photo still spans well over the 20 px it is scaled to
_MAX_SIDE = 4096  # ... and their longer side kept <= this, so a 40000x1000 strip costs no more than a photo
_BOX, _SIDE, _CENTRE = 20, 28, 14.0  # MNIST's centres of mass: mean 14.00, sd 0.29 (training set)
_MIN_INK = 0.001  # a digit covers at least this fraction of the picture
_MIN_CONTRAST = 16.0  # grey levels the ink must rise above the background's cut-off
_FAINT = 0.01  # a line across the picture with under this share of the fullest one's ink is empty
_SPECK = 0.05  # a run of ink lines with under this share of the heaviest run's ink is a speck


class ImageError(ValueError):
    """A picture or pixel grid that cannot become a digit; str(error) tells the user why."""

    status_code = 422


class UndecodableImage(ImageError):
    status_code = 415


class ImageTooLarge(ImageError):
    status_code = 413


class NoDigitFound(ImageError):
    status_code = 422


class BadPixels(ImageError):
    status_code = 422


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode uploaded bytes, upright (EXIF orientation applied); animated images give their
    first frame, JPEGs may come back shrunk by libjpeg (by 2, 4 or 8, never below what
    `to_mnist` needs)."""
    if not data:
        raise UndecodableImage("cannot decode image: empty file")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size  # declared in the header; nothing is decoded yet
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
        image.draft(image.mode, (_WORK, _WORK))  # JPEG only: decode at a fraction of the size
        image.load()  # the first frame of an animation
        ImageOps.exif_transpose(image, in_place=True)  # phones store photos turned, with a tag
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise UndecodableImage(
            f"cannot decode image: not a recognised image format (supported: {', '.join(FORMATS)})"
        ) from None
    except Image.DecompressionBombError:
        # Pillow refuses sizes over twice its own limit before it tells us the dimensions.
        raise ImageTooLarge(f"image is over {2 * Image.MAX_IMAGE_PIXELS} pixels; the limit is {max_pixels}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise UndecodableImage(f"cannot decode image: {error}") from None
    return image


def to_mnist(image: Image.Image) -> np.ndarray:
    """The digit in `image` as MNIST would have it: uint8 (28, 28), light ink on 0."""
    ink = _isolate_ink(_grayscale(image))
    top, bottom = _span(ink.sum(axis=1))
    left, right = _span(ink.sum(axis=0))
    return _centre(_fit(ink[top:bottom, left:right]))


def pixels_to_array(
    pixels: Sequence[float] | Sequence[Sequence[float]], scale: Literal["255", "1"] = "255"
) -> np.ndarray:
    """JSON pixels (784 values or 28 rows of 28, already MNIST-like) as float32 (28, 28) in 0..1.

    Values are 0..255, or 0..1 when `scale` is "1". Positions in messages count from 0.
    """
    shape = "pixels must be 784 values or 28 rows of 28"
    if not isinstance(pixels, (list, tuple)):
        raise BadPixels(f"{shape}; got {type(pixels).__name__}")
    if any(isinstance(row, (list, tuple)) for row in pixels):
        if len(pixels) != _SIDE:
            raise BadPixels(f"{shape}; got {len(pixels)} rows")
        for index, row in enumerate(pixels):
            if not isinstance(row, (list, tuple)):
                raise BadPixels(f"{shape}; row {index} is not a list")
            if len(row) != _SIDE:
                raise BadPixels(f"{shape}; row {index} has {len(row)} values")
        values = [value for row in pixels for value in row]
    elif len(pixels) != _SIDE * _SIDE:
        raise BadPixels(f"{shape}; got {len(pixels)} values")
    else:
        values = list(pixels)
    # bool is an int to Python, and numpy would happily parse "12": neither is a pixel.
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise BadPixels("pixel values must be numbers")
    top = 255.0 if scale == "255" else 1.0
    try:
        array = np.array(values, dtype=np.float64).reshape(_SIDE, _SIDE)
    except OverflowError:  # JSON integers have no size limit
        raise BadPixels(f"pixel values must be within 0..{top:g}; found a huge number") from None
    bad = ~(np.isfinite(array) & (array >= 0) & (array <= top))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise BadPixels(
            f"pixel values must be within 0..{top:g}; found {array[row, column]:g} at row {row}, column {column}"
        )
    return (array / top).astype(np.float32)


def mnist_to_input(array_uint8: np.ndarray) -> np.ndarray:
    """The network's input for an MNIST-like uint8 digit: float32 (28, 28) in 0..1."""
    return np.asarray(array_uint8, dtype=np.float32) / 255.0


def _grayscale(image: Image.Image) -> np.ndarray:
    """Luminance 0..255 as float32, shrunk (box-averaged) to a shorter side of at most 2 * _WORK and a longer
    side of at most _MAX_SIDE."""
    if image.has_transparency_data:
        image = image.convert("RGBA").convert("LA")  # palette transparency becomes alpha
    elif image.mode == "LAB":  # (TIFF) Pillow cannot convert it, but L is the lightness
        image = image.getchannel("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode not in ("I", "F"):
        image = image.convert("L")
    factor = max(min(image.size) // _WORK, -(-max(image.size) // _MAX_SIDE))
    if factor > 1:
        image = image.reduce(factor)  # averages premultiplied alpha, so edges stay right
    values = np.asarray(image, dtype=np.float32)
    if image.mode == "LA":
        luminance, alpha = values[..., 0], values[..., 1] / 255
        # Show the strokes on a backdrop they stand out from: white unless they are light.
        light_strokes = (luminance * alpha).sum() > 127.5 * alpha.sum()
        return luminance * alpha + (0.0 if light_strokes else 255.0) * (1 - alpha)
    if image.mode in ("I", "F"):
        peak = values.max(initial=0)
        # 16-bit data (I;16 PNGs) spans 0..65535; float pictures are often 0..1.
        unit = 255 / 65535 if peak > 255 else 255.0 if image.mode == "F" and peak <= 1 else 1.0
        return np.clip(values * unit, 0, 255)
    return values


def _isolate_ink(gray: np.ndarray) -> np.ndarray:
    """Light-on-black ink with the background (judged from the picture's border) cut to 0."""
    height, width = gray.shape
    edge = np.zeros(gray.shape, dtype=bool)
    k = max(1, min(height, width) // 50)
    edge[:k] = edge[-k:] = edge[:, :k] = edge[:, -k:] = True
    # Paper in a photo is shaded smoothly (light from one side, vignetting): level it with a
    # quadratic surface fitted to the border, leaving out outliers (strokes running off the edge).
    rows, cols = np.nonzero(edge)
    values = gray[edge]
    deviation = np.abs(values - np.median(values))
    paper = deviation <= 3 * np.median(deviation)
    y, x = rows / height, cols / width
    terms = np.column_stack([np.ones(rows.size), y, y * y, x, x * x, x * y])[paper]
    # Least squares through the 6x6 normal equations: fast, and lstsq copes with tiny pictures.
    fit = np.linalg.lstsq(terms.T @ terms, terms.T @ values[paper], rcond=None)[0]
    _, a, b, c, d, e = fit.astype(np.float32)
    y = np.arange(height, dtype=np.float32) / height
    x = np.arange(width, dtype=np.float32) / width
    gray = gray - np.add.outer(a * y + b * y * y, c * x + d * x * x) - np.outer(e * y, x)
    border = gray[edge]
    background = np.median(border)
    darkest, lightest = np.percentile(gray, [0.1, 99.9])
    if background - darkest > lightest - background:  # the ink is darker than the paper
        gray, border = -gray, -border
    # Ink lies above the paper now, so the spread below the border's median is the paper's own
    # noise, even where strokes cover much of the border; mirrored and tripled, it clears
    # nearly all of it (3.8 sigma for Gaussian noise).
    typical, low = np.percentile(border, [50, 10])
    ink = gray - (typical + 3 * (typical - low))
    inked = ink > 0.5  # at least half a grey level, so float dust from the levelling is not ink
    # Keep the anti-aliased grey levels: stretch, saturating only the brightest 1% of the ink.
    peak = np.percentile(ink[inked], 99) if inked.mean() >= _MIN_INK else 0.0
    if peak < _MIN_CONTRAST:
        raise NoDigitFound("no digit found: the image is blank")
    return np.clip(ink * (255 / peak), 0, 255)


def _span(profile: np.ndarray) -> tuple[int, int]:
    """Start and end (exclusive) of the ink along one axis (`profile`: ink summed across it).

    Lines with under _FAINT of the fullest line's ink count as empty, which trims JPEG ringing
    around strokes; of the runs of ink between empty lines, light ones are specks and dropped.
    """
    filled = np.concatenate(([False], profile > _FAINT * profile.max(), [False]))
    edges = np.flatnonzero(filled[1:] != filled[:-1])
    starts, ends = edges[::2], edges[1::2]
    mass = np.add.reduceat(profile, starts)  # each run (and the faint gap after it)
    kept = np.flatnonzero(mass >= _SPECK * mass.max())
    return int(starts[kept[0]]), int(ends[kept[-1]])


def _fit(crop: np.ndarray) -> np.ndarray:
    """Scale so the longer side is _BOX pixels; shrinking box-averages first, so it anti-aliases."""
    height, width = crop.shape
    scale = _BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.clip(np.asarray(resized), 0, 255)


def _centre(digit: np.ndarray) -> np.ndarray:
    """Paste into 28x28 with the centre of mass on (14, 14), as far as the edges allow."""
    height, width = digit.shape
    total = digit.sum()
    com_row = digit.sum(axis=1) @ np.arange(height) / total
    com_col = digit.sum(axis=0) @ np.arange(width) / total
    top = int(np.clip(round(_CENTRE - com_row), 0, _SIDE - height))
    left = int(np.clip(round(_CENTRE - com_col), 0, _SIDE - width))
    out = np.zeros((_SIDE, _SIDE), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return np.rint(out).astype(np.uint8)
