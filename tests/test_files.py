"""Files and folders appear whole, readable by other users (the API may run as another user than the worker)."""

import stat

import pytest

from service.domain.files import atomic_path


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_appears_whole_with_mode_0644_replacing_the_old_one(tmp_path):
    target = tmp_path / "sub" / "file"
    for text in ("old", "new"):
        with atomic_path(target) as staging:
            staging.write_text(text)
            assert not target.exists() or target.read_text() == "old"  # nothing half-written is ever seen
    assert target.read_text() == "new" and mode(target) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["file"]


def test_a_folder_appears_whole_with_mode_0755(tmp_path):
    with atomic_path(tmp_path / "model", directory=True) as staging:
        (staging / "weights").write_bytes(b"w")
        assert not (tmp_path / "model").exists()
    assert (tmp_path / "model" / "weights").read_bytes() == b"w" and mode(tmp_path / "model") == 0o755


@pytest.mark.parametrize("directory", [False, True])
def test_a_failure_leaves_nothing_behind(tmp_path, directory):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "thing", directory=directory) as staging:
        (staging / "part").write_bytes(b"x") if directory else staging.write_bytes(b"x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
