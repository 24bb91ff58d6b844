"""Tests for service.serving.images: pictures and pixel grids in, MNIST-like digits out."""

import io
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from service.serving.images import (
    BadPixels,
    ImageError,
    ImageTooLarge,
    NoDigitFound,
    UndecodableImage,
    decode_image,
    mnist_to_input,
    pixels_to_array,
    to_mnist,
)

BICUBIC = Image.Resampling.BICUBIC


@pytest.fixture(scope="session")
def digits(mnist_data_dir: Path) -> np.ndarray:
    """The first 50 test-set digits, uint8 (50, 28, 28)."""
    raw = (mnist_data_dir / "t10k-images-idx3-ubyte").read_bytes()
    assert int.from_bytes(raw[:4], "big") == 2051  # IDX magic for unsigned-byte 3-D data
    return np.frombuffer(raw, dtype=np.uint8, offset=16)[: 50 * 784].reshape(50, 28, 28)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def round_trip(data: bytes) -> np.ndarray:
    return to_mnist(decode_image(data))


def centre_of_mass(array: np.ndarray) -> np.ndarray:
    weights = array.astype(np.float64)
    index = np.arange(array.shape[0])
    return np.array([weights.sum(1) @ index, weights.sum(0) @ index]) / weights.sum()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def drawing(digit: np.ndarray, offset: tuple[int, int] = (60, 40)) -> Image.Image:
    """An MNIST digit as a user would draw it: ~300 px of black ink, off-centre on white."""
    big = Image.fromarray(255 - digit).resize((300, 300), BICUBIC)
    canvas = Image.new("L", (520, 440), 255)
    canvas.paste(big, offset)
    return canvas


def ink_on_transparent(image: Image.Image, ink: tuple[int, int, int]) -> Image.Image:
    """Strokes of colour `ink` on a fully transparent canvas, coverage taken from `image`'s darkness."""
    strokes = Image.new("RGBA", image.size, (*ink, 255))
    canvas = Image.new("RGBA", image.size, (0, 0, 0, 0))
    canvas.paste(strokes, (0, 0), Image.eval(image, lambda v: 255 - v))
    return canvas


# --- real digits ------------------------------------------------------------------------------

RENDERINGS = {
    "png": lambda im: encode(im, "PNG"),
    "jpeg": lambda im: encode(im.convert("RGB"), "JPEG", quality=85),
    "rgba": lambda im: encode(ink_on_transparent(im, (0, 0, 0)), "PNG"),
    "gif": lambda im: encode(im.convert("P"), "GIF"),
}


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_user_drawings_come_back_as_the_original_digit(digits: np.ndarray, rendering: str) -> None:
    correlations, differences = [], []
    for i, digit in enumerate(digits):
        out = round_trip(RENDERINGS[rendering](drawing(digit, (20 + 3 * i, 10 + 2 * i))))
        assert out.dtype == np.uint8 and out.shape == (28, 28)
        assert np.abs(centre_of_mass(out) - 14).max() <= 0.5 + 1e-9  # rounded shift onto (14, 14)
        correlations.append(correlation(out, digit))
        differences.append(np.abs(out.astype(float) - digit).mean())
    # Measured: correlation 0.941 and mean absolute difference 7.4 grey levels for all four
    # encodings. What is left is the bicubic upscaling's soft edge (it widens the digit, so it
    # comes back ~5% smaller) and sub-pixel placement, which costs thin 1s the most (min ~0.67).
    assert np.mean(correlations) > 0.9
    assert np.mean(differences) < 10


def test_mnist_digit_itself_round_trips_nearly_unchanged(digits: np.ndarray) -> None:
    # MNIST digits already span 20 px with their centre of mass on (14, 14) (to within 0.5), so
    # little may change: the stretch of the brightest 1% to 255, and faint edge columns (under 1%
    # of the fullest one's ink) that the trimming for JPEG ringing drops.
    # Measured: mean absolute difference 0.12 grey levels, the worst digit 0.56.
    differences = [
        np.abs(round_trip(encode(Image.fromarray(digit), "PNG")).astype(int) - digit).mean() for digit in digits
    ]
    assert max(differences) < 1 and np.mean(differences) < 0.25


def photo_of(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink on paper lit unevenly (150 to 200 across the sheet), with sensor noise, as JPEG."""
    coverage = np.asarray(Image.fromarray(digit).resize((280, 280), BICUBIC), dtype=float) / 255
    paper = np.tile(np.linspace(150, 200, 480), (360, 1))
    region = paper[40:320, 120:400]
    region[:] = region * (1 - coverage) + 60 * coverage
    photo = np.clip(paper + rng.normal(0, 8, paper.shape), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(photo).convert("RGB"), "JPEG", quality=90)


def test_phone_photo_background_is_removed(digits: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    correlations = []
    for digit in digits[:10]:
        out = round_trip(photo_of(digit, rng))
        far = np.asarray(Image.fromarray(digit).filter(ImageFilter.MaxFilter(5))) == 0
        assert (out[far] > 8).mean() < 0.01  # no paper left away from the strokes
        assert (out == 0).mean() > 0.7  # MNIST digits: 81% zeros
        correlations.append(correlation(out, digit))
    # Measured 0.88: the noise threshold drops the faintest strokes and the grey fringe, so
    # photographed digits come back a little thinner.
    assert np.mean(correlations) > 0.8


def test_strokes_running_off_the_edge_are_kept(digits: np.ndarray) -> None:
    # A tight crop: the ink touches all four sides, so the border is no longer pure paper.
    # Measured: correlation 0.90 to 0.997, mean 0.975.
    for digit in digits[:10]:
        (top, left), (bottom, right) = np.argwhere(digit).min(0), np.argwhere(digit).max(0) + 1
        crop = Image.fromarray(255 - digit[top:bottom, left:right])
        tight = crop.resize((crop.width * 10, crop.height * 10), BICUBIC)
        assert correlation(round_trip(encode(tight, "PNG")), digit) > 0.8


def test_specks_away_from_the_digit_are_ignored(digits: np.ndarray) -> None:
    image = drawing(digits[0])
    clean = round_trip(encode(image, "PNG"))
    image.paste(0, (500, 420, 506, 426))  # a 6x6 speck of dirt in a corner
    assert np.array_equal(round_trip(encode(image, "PNG")), clean)


def test_light_strokes_on_transparent_canvas(digits: np.ndarray) -> None:
    out = round_trip(encode(ink_on_transparent(drawing(digits[1]), (255, 255, 255)), "PNG"))
    assert correlation(out, digits[1]) > 0.85


# --- blanks -----------------------------------------------------------------------------------

_rng = np.random.default_rng(3)
BLANKS = {
    "white": Image.new("L", (300, 300), 255),
    "black": Image.new("L", (300, 300), 0),
    "grey": Image.new("RGB", (300, 300), (128, 128, 128)),
    "1x1": Image.new("L", (1, 1), 0),
    "faint noise": Image.fromarray(np.clip(_rng.normal(128, 5, (300, 300)), 0, 255).astype(np.uint8)),
    "transparent": Image.new("RGBA", (300, 300), (0, 0, 0, 0)),
}


@pytest.mark.parametrize("name", BLANKS)
def test_blank_images_have_no_digit(name: str) -> None:
    with pytest.raises(NoDigitFound, match="no digit found: the image is blank") as caught:
        round_trip(encode(BLANKS[name], "PNG"))
    assert caught.value.status_code == 422


# --- bad bytes --------------------------------------------------------------------------------


def small_png() -> bytes:
    rng = np.random.default_rng(5)
    return encode(Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)), "PNG")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "cannot decode image: empty file"),
        (b"not an image", "not a recognised image format"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "cannot decode image: "),
        (small_png()[: len(small_png()) // 2], "cannot decode image: image file is truncated"),
        (encode(Image.new("L", (8, 8)), "PCX"), "not a recognised image format"),  # valid, not allowed
    ],
    ids=["empty", "text", "png-magic-garbage", "truncated-png", "unsupported-pcx"],
)
def test_undecodable_bytes(data: bytes, message: str) -> None:
    with pytest.raises(UndecodableImage, match=message) as caught:
        decode_image(data)
    assert caught.value.status_code == 415 and isinstance(caught.value, ImageError)


def png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR is patched to declare width x height (CRC fixed up)."""
    data = bytearray(small_png())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # over "IHDR" + its 13 bytes
    return bytes(data)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        # Over Pillow's own refusal limit (2 x 89 M), which comes before it reveals the size.
        ((20000, 20000), r"image is over \d+ pixels; the limit is 40000000"),
        ((8000, 8000), r"image is 8000x8000 = 64000000 pixels; the limit is 40000000"),
    ],
)
def test_huge_declared_size_is_refused_without_decoding(size: tuple[int, int], message: str) -> None:
    data = png_declaring(*size)
    with pytest.raises(ImageTooLarge, match=message) as caught:
        decode_image(data)
    assert caught.value.status_code == 413
    assert peak_growth_decoding(data) < 20_000_000  # refused from the header, never decoded


def peak_growth_decoding(data: bytes) -> int:
    """How much a fresh process's peak resident memory (VmHWM) grows while it decodes `data`: what the operating
    system sees, Pillow's buffers included (tracemalloc sees only Python's)."""
    code = """if True:
        import sys
        from service.serving.images import ImageError, decode_image, to_mnist
        data = sys.stdin.buffer.read()
        def peak():
            return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
        before = peak()
        try:
            to_mnist(decode_image(data))
        except ImageError:
            pass
        print(peak() - before)
    """
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120)
    return int(done.stdout)


def test_pixel_limit_is_configurable() -> None:
    with pytest.raises(ImageTooLarge, match="image is 64x64 = 4096 pixels; the limit is 4000"):
        decode_image(small_png(), max_pixels=4000)
    assert decode_image(small_png(), max_pixels=4096).size == (64, 64)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the damage it skips
def test_corrupted_files_only_ever_raise_image_error(digits: np.ndarray) -> None:
    image = drawing(digits[2]).resize((130, 110))
    originals = [encode(image, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
    rng = np.random.default_rng(11)
    for original in originals:
        for _ in range(40):
            data = np.frombuffer(original, dtype=np.uint8).copy()
            data[rng.integers(0, data.size, 4)] = rng.integers(0, 256, 4)
            try:
                round_trip(data[: rng.integers(data.size // 2, data.size + 1)].tobytes())
            except ImageError as error:
                assert error.status_code in (413, 415, 422) and str(error)


# --- modes ------------------------------------------------------------------------------------


def animated_gif(first: np.ndarray, second: np.ndarray) -> bytes:
    frames = [drawing(d).convert("P") for d in (first, second)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def lab(lightness: Image.Image) -> Image.Image:
    neutral = Image.new("L", lightness.size, 128)  # a* = b* = 0: grey
    return Image.merge("LAB", [lightness, neutral, neutral])


MODES = {
    # name: (bytes from the digit, mode Pillow opens it in)
    "I;16 png": (lambda d: encode(Image.fromarray(d.astype(np.uint16) * 257), "PNG"), "I;16"),
    "I tiff": (lambda d: encode(Image.fromarray(d.astype(np.int32) * 257), "TIFF"), "I"),
    "F tiff 0..1": (lambda d: encode(Image.fromarray(d.astype(np.float32) / 255), "TIFF"), "F"),
    "CMYK jpeg": (lambda d: encode(drawing(d).convert("CMYK"), "JPEG", quality=90), "CMYK"),
    "LA png": (lambda d: encode(ink_on_transparent(drawing(d), (0, 0, 0)).convert("LA"), "PNG"), "LA"),
    "P png transparency": (
        lambda d: encode(ink_on_transparent(drawing(d), (0, 0, 0)).quantize(16), "PNG"),
        "P",
    ),
    "1 png": (lambda d: encode(drawing(d).convert("1", dither=Image.Dither.NONE), "PNG"), "1"),
    "RGB bmp": (lambda d: encode(drawing(d).convert("RGB"), "BMP"), "RGB"),
    "LAB tiff": (lambda d: encode(lab(drawing(d)), "TIFF"), "LAB"),
}


@pytest.mark.parametrize("name", MODES)
def test_every_mode_gives_the_digit(digits: np.ndarray, name: str) -> None:
    make, mode = MODES[name]
    image = decode_image(make(digits[3]))
    assert image.mode == mode
    assert correlation(to_mnist(image), digits[3]) > 0.85


@pytest.mark.parametrize("name", MODES)
def test_every_mode_blank_is_no_digit(name: str) -> None:
    make, _ = MODES[name]
    with pytest.raises(NoDigitFound):
        round_trip(make(np.zeros((28, 28), dtype=np.uint8)))


def test_palette_transparency_is_composited(digits: np.ndarray) -> None:
    image = decode_image(MODES["P png transparency"][0](digits[3]))
    assert "transparency" in image.info  # the case being tested: tRNS, not an alpha channel


def test_exif_orientation_is_applied(digits: np.ndarray) -> None:
    # Orientation 6: the camera stored the picture turned 90 degrees anticlockwise.
    stored = drawing(digits[0]).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = round_trip(encode(stored, "JPEG", quality=90, exif=exif.tobytes()))
    assert correlation(out, digits[0]) > 0.9


def test_animated_gif_uses_the_first_frame(digits: np.ndarray) -> None:
    out = round_trip(animated_gif(digits[4], digits[5]))
    assert correlation(out, digits[4]) > 0.85 > correlation(out, digits[5])


def test_large_photo_is_reduced_to_the_digit() -> None:
    rng = np.random.default_rng(1)
    photo = np.full((3000, 4000), 180, dtype=np.uint8) + rng.integers(0, 20, (3000, 4000), dtype=np.uint8)
    photo[800:2200, 1800:2200] = 40  # a bar, 1400 x 400
    image = Image.fromarray(photo).convert("RGB")
    out = to_mnist(image)  # its speed is measured in bench/, not asserted here
    assert (out > 200).sum(axis=0).max() == 20 and (out > 200).sum(axis=1).max() == 6  # 20 x 6
    assert np.abs(centre_of_mass(out) - 14).max() <= 0.5


# --- JSON pixels ------------------------------------------------------------------------------


def test_pixels_flat_and_nested() -> None:
    values = np.arange(784) % 256
    flat = pixels_to_array(values.tolist())
    nested = pixels_to_array(values.reshape(28, 28).tolist())
    assert flat.dtype == np.float32 and flat.shape == (28, 28)
    assert np.array_equal(flat, nested)
    assert np.allclose(flat, values.reshape(28, 28) / 255)
    assert pixels_to_array([0.5] * 784)[0, 0] == pytest.approx(0.5 / 255)


def test_pixels_scale_one() -> None:
    assert pixels_to_array([1.0] * 783 + [0.25], scale="1")[27, 27] == 0.25
    with pytest.raises(BadPixels, match=r"within 0\.\.1; found 2 at row 0, column 0"):
        pixels_to_array([2.0] + [0.0] * 783, scale="1")


def _grid(row: int, column: int, value: object) -> list[list[object]]:
    grid: list[list[object]] = [[0] * 28 for _ in range(28)]
    grid[row][column] = value
    return grid


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        ([0] * 783, "pixels must be 784 values or 28 rows of 28; got 783 values"),
        ([[0] * 28] * 27, "pixels must be 784 values or 28 rows of 28; got 27 rows"),
        ([[0] * 28] * 27 + [[0] * 27], "row 27 has 27 values"),
        ("0" * 784, "pixels must be 784 values or 28 rows of 28; got str"),
        (_grid(3, 5, 300), r"pixel values must be within 0\.\.255; found 300 at row 3, column 5"),
        (_grid(0, 1, -1), "found -1 at row 0, column 1"),
        (_grid(2, 2, float("nan")), "found nan at row 2, column 2"),
        (_grid(2, 2, float("inf")), "found inf at row 2, column 2"),
        (_grid(1, 1, "12"), "pixel values must be numbers"),
        (_grid(1, 1, True), "pixel values must be numbers"),
        ([[0] * 28] * 27 + [0], "row 27 is not a list"),  # mixed rows and values
        (_grid(0, 0, 10**400), "within 0..255; found a huge number"),  # beyond float
    ],
)
def test_bad_pixels(pixels: object, message: str) -> None:
    with pytest.raises(BadPixels, match=message) as caught:
        pixels_to_array(pixels)  # type: ignore[arg-type]
    assert caught.value.status_code == 422


def test_mnist_to_input() -> None:
    array = np.zeros((28, 28), dtype=np.uint8)
    array[0, :3] = [0, 51, 255]
    out = mnist_to_input(array)
    assert out.dtype == np.float32 and out.shape == (28, 28)
    assert out[0, :3].tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_a_very_long_strip_is_shrunk_by_its_longer_side_and_the_mark_found() -> None:
    strip = np.full((1000, 40000), 255, dtype=np.uint8)
    strip[200:800, 20000:20100] = 0  # a vertical bar: a "1"
    out = to_mnist(Image.fromarray(strip))
    assert out.max() == 255 and (out > 128).sum(axis=0).max() == 20  # the bar fills the 20 px box's height
