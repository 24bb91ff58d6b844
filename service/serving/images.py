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

Memory: a picture is decoded at full size in its own mode (a large JPEG at 1/2 to 1/8 of it), then converted and
shrunk a band of rows at a time, so no second full-size copy is made. `decoding_bytes` says what a picture costs;
`DecodingBudget` keeps what all requests decode at once within a limit.
"""

import asyncio
import io
import numbers
import struct
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.domain.mnist import IMAGE_SIDE

# Only plain raster formats: Pillow's other plugins (EPS runs Ghostscript, ...) are attack surface.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")  # JPEG includes MPO
_WORK = 512  # pictures are shrunk early, but their shorter side kept >= this: a digit filling
#              only part of a photo still spans well over the 20 px it is scaled to
_MAX_SIDE = 4096  # ... and their longer side kept <= this, so a 40000x1000 strip costs no more than a photo
_BAND_PIXELS = 1 << 20  # pictures are converted and shrunk this many pixels at a time
_WORKING_BYTES = 24 << 20  # what that takes at most, with the rest of `to_mnist`
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2}  # what Pillow stores a pixel of these modes in; others take 4
_ORIENTATION = 0x0112  # the EXIF tag, and how to turn a picture upright for each of its values
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 image ...
_CENTRE = IMAGE_SIDE / 2  # ... with their centre of mass at its centre: mean 14.00, sd 0.29 (training set)
_MIN_INK = 0.001  # a digit covers at least this fraction of the picture
_MIN_CONTRAST = 16.0  # grey levels the ink must rise above the background's cut-off
_FAINT = 0.01  # a line across the picture with under this share of the fullest one's ink is empty
_SPECK = 0.05  # a run of ink lines with under this share of the heaviest run's ink is a speck

# Pillow allocates a large picture's pixels in blocks of 16 MB: under glibc's 32 MB ceiling for memory it maps
# (and unmaps when freed), so once freed they stay with the thread's malloc arena, and each thread of the pool
# that decodes a large picture keeps its own. In blocks of 64 MB they are mapped, and given back when freed.
Image.core.set_block_size(64 << 20)


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


def open_image(data: bytes, max_pixels: int = 40_000_000) -> Image.Image:
    """The picture in `data`, its header read and its size checked, nothing decoded yet. Its `size` is what
    `load_image` will decode: a large JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 of its size (never below
    what `to_mnist` needs)."""
    if not data:
        raise UndecodableImage("cannot decode image: empty file")
    with _decoding_errors(max_pixels):
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size  # declared in the header; nothing is decoded yet
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
        factor = _reduction(image.size)
        if factor > 1:  # JPEG only: decode at a fraction of the size, no smaller than the reduction to come
            image.draft(image.mode, (-(-width // factor), -(-height // factor)))
    return image


def load_image(image: Image.Image, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode an opened picture (an animation's first frame), in its own mode; `to_mnist` turns it upright."""
    with _decoding_errors(max_pixels):
        image.load()
        image.getexif()  # read here, where a corrupt one is an ImageError; kept for `to_mnist`
    return image


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> Image.Image:
    """Open and decode uploaded bytes (see `open_image` and `load_image`)."""
    return load_image(open_image(data, max_pixels), max_pixels)


def decoding_bytes(image: Image.Image) -> int:
    """About the most memory that decoding an opened picture and making it a digit takes, in bytes. Measured with
    Pillow 13 on 40-megapixel pictures: the decoded picture in its own mode (1, 2 or 4 bytes a pixel), and 24 MB
    for the bands `to_mnist` converts; a WebP takes 16 bytes a pixel (libwebp's two canvases, and Pillow's copy of
    one); a progressive JPEG, 2 bytes a pixel per colour for libjpeg's coefficients at full size, however small
    it is decoded."""
    width, height = image.size
    if image.format == "WEBP":
        return 16 * width * height
    cost = _PIXEL_BYTES.get(image.mode[:4], 4) * width * height + _WORKING_BYTES
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        scale = image.decoderconfig[0] if image.decoderconfig else 1  # what `open_image`'s draft shrinks it by
        cost += 2 * len(image.getbands()) * width * height * scale * scale
    return cost


class DecodingBudget:
    """The memory that decoding pictures takes in this process, all requests together, kept within `max_bytes`
    (see `decoding_bytes`): a request waits its turn, in order of arrival and without holding a thread, until
    what it needs fits. One that needs more than the whole budget waits until nothing else is decoding. Usable
    from any thread and event loop."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.in_use = 0
        self._lock = threading.Lock()
        self._waiting: deque[_Waiter] = deque()

    @asynccontextmanager
    async def reserve(self, cost: int) -> AsyncIterator[None]:
        cost = min(cost, self.max_bytes)
        waiter = _Waiter(cost, asyncio.get_running_loop())
        with self._lock:
            self._waiting.append(waiter)
            self._grant()
        try:
            await waiter.turn
        except BaseException:
            with self._lock:
                if waiter.granted:  # its turn came as it was cancelled: give it back
                    self.in_use -= cost
                else:
                    self._waiting.remove(waiter)
                self._grant()
            raise
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= cost
                self._grant()

    def _grant(self) -> None:
        while self._waiting and self.in_use + self._waiting[0].cost <= self.max_bytes:
            waiter = self._waiting.popleft()
            waiter.granted = True
            self.in_use += waiter.cost
            waiter.loop.call_soon_threadsafe(_wake, waiter.turn)


class _Waiter:
    def __init__(self, cost: int, loop: asyncio.AbstractEventLoop) -> None:
        self.cost = cost
        self.loop = loop
        self.turn: asyncio.Future[None] = loop.create_future()
        self.granted = False


def _wake(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


@contextmanager
def _decoding_errors(max_pixels: int) -> Iterator[None]:
    """Pillow's errors while it reads a picture, as `ImageError`s that tell the user what is wrong."""
    try:
        yield
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
        if len(pixels) != IMAGE_SIDE:
            raise BadPixels(f"{shape}; got {len(pixels)} rows")
        for index, row in enumerate(pixels):
            if not isinstance(row, (list, tuple)):
                raise BadPixels(f"{shape}; row {index} is not a list")
            if len(row) != IMAGE_SIDE:
                raise BadPixels(f"{shape}; row {index} has {len(row)} values")
        values = [value for row in pixels for value in row]
    elif len(pixels) != IMAGE_SIDE * IMAGE_SIDE:
        raise BadPixels(f"{shape}; got {len(pixels)} values")
    else:
        values = list(pixels)
    # bool is an int to Python, and numpy would happily parse "12": neither is a pixel.
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise BadPixels("pixel values must be numbers")
    top = 255.0 if scale == "255" else 1.0
    try:
        array = np.array(values, dtype=np.float64).reshape(IMAGE_SIDE, IMAGE_SIDE)
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


def input_to_png(image: np.ndarray) -> bytes:
    """The network's input (float32 (28, 28) in 0..1) as a greyscale PNG: what the model saw (some 200-500 bytes)."""
    file = io.BytesIO()
    Image.fromarray(np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), "L").save(file, "PNG")
    return file.getvalue()


def _reduction(size: tuple[int, int]) -> int:
    """The factor a picture of `size` is shrunk by: to a shorter side of at most 2 * _WORK and a longer side of at
    most _MAX_SIDE."""
    return max(1, min(size) // _WORK, -(-max(size) // _MAX_SIDE))


def _grayscale(image: Image.Image) -> np.ndarray:
    """Luminance 0..255 as float32, shrunk (box-averaged) by `_reduction` and turned upright.

    The picture is converted and shrunk a band of rows at a time, so that its decoded pixels are the only copy of
    it at full size: converted whole first, a 40-megapixel RGBA picture would take 2.5 times its own memory again.
    """
    factor = _reduction(image.size)
    mode, convert = _gray_mode(image)
    if factor == 1:
        reduced = convert(image)
    else:
        width, height = image.size
        rows = factor * max(1, _BAND_PIXELS // (width * factor))
        reduced = Image.new(mode, (-(-width // factor), -(-height // factor)))
        for top in range(0, height, rows):
            band = convert(image.crop((0, top, width, min(top + rows, height))))
            reduced.paste(band.reduce(factor), (0, top // factor))  # LA: averages premultiplied alpha
    orientation = image.getexif().get(_ORIENTATION, 1)  # phones store photos turned, with a tag
    if orientation in _UPRIGHT:
        reduced = reduced.transpose(_UPRIGHT[orientation])
    values = np.asarray(reduced, dtype=np.float32)
    if mode == "LA":
        luminance, alpha = values[..., 0], values[..., 1] / 255
        # Show the strokes on a backdrop they stand out from: white unless they are light.
        light_strokes = (luminance * alpha).sum() > 127.5 * alpha.sum()
        return luminance * alpha + (0.0 if light_strokes else 255.0) * (1 - alpha)
    if mode in ("I", "F"):
        peak = values.max(initial=0)
        # 16-bit data (I;16 PNGs) spans 0..65535; float pictures are often 0..1.
        unit = 255 / 65535 if peak > 255 else 255.0 if mode == "F" and peak <= 1 else 1.0
        return np.clip(values * unit, 0, 255)
    return values


def _gray_mode(image: Image.Image) -> tuple[str, Callable[[Image.Image], Image.Image]]:
    """The mode that `_grayscale` works in for `image`, and how to convert (part of) it to that mode."""
    if image.has_transparency_data:
        return "LA", lambda part: part.convert("RGBA").convert("LA")  # palette transparency becomes alpha
    if image.mode == "LAB":  # (TIFF) Pillow cannot convert it, but L is the lightness
        return "L", lambda part: part.getchannel("L")
    if image.mode.startswith("I;16"):
        return "I", lambda part: part.convert("I")
    if image.mode in ("I", "F"):
        return image.mode, lambda part: part
    return "L", lambda part: part.convert("L")


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
    top = int(np.clip(round(_CENTRE - com_row), 0, IMAGE_SIDE - height))
    left = int(np.clip(round(_CENTRE - com_col), 0, IMAGE_SIDE - width))
    out = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return np.rint(out).astype(np.uint8)
