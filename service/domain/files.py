"""Files and folders that appear whole: made under a temporary name beside their place, then renamed over it."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, *, directory: bool = False, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write a file (or, with ``directory``, a folder) at.

    When the block ends, the new file is given ``mode`` (by default 0644, or 0755 for a folder: mkstemp and
    mkdtemp create them private) and renamed to ``path`` in one step, so a reader sees the old one or the new
    one, never half of either. If the block raises, the temporary file or folder is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(descriptor)
        staging = Path(name)
    try:
        yield staging
        os.chmod(staging, mode if mode is not None else 0o755 if directory else 0o644)
        os.replace(staging, path)
    except BaseException:
        if directory:
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
        raise
