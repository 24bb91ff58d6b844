"""``python -m bench.handwriting [SET ...]``: (re)make the evaluation sets in service/evaluation/sets/ (all three
by default, photos last).

- fonts: needs the font packages listed in docs/handwriting.md (apt-get install ...),
- photos: made from the fonts and pad sets' files (make them first),
- pad: needs Debian's chromium and tests/browser's node_modules (``make browser``).

Each set is made in a folder of its own and put in place of the old one when it is whole, so that whoever
evaluates meanwhile reads the old set or the new one.
"""

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from service.evaluation.sets import SETS_DIR

SEEDS = {"fonts": 15, "photos": 1515, "pad": 151515}


def replace_set(name: str, make: Callable[[Path], object]) -> None:
    """Make a set with `make(folder)` in a new folder, then put it in place of the old one."""
    final = SETS_DIR / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=SETS_DIR))
    try:
        make(staging)
        staging.chmod(0o755)
        if final.exists():
            final.rename(retired := SETS_DIR / f".{name}.old")
            staging.rename(final)
            shutil.rmtree(retired)
        else:
            staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.handwriting", description=__doc__)
    parser.add_argument("sets", nargs="*", choices=["fonts", "photos", "pad"], default=["fonts", "pad", "photos"])
    for name in parser.parse_args().sets:
        if name == "fonts":
            from bench.handwriting import fonts

            replace_set(name, lambda folder: print("\n".join(fonts.generate(folder, SEEDS["fonts"]))))
        elif name == "photos":
            from bench.handwriting import photos

            replace_set(name, lambda folder: photos.generate(SETS_DIR, folder, SEEDS["photos"]))
        else:
            from bench.handwriting import pad

            replace_set(name, lambda folder: pad.generate(folder, SEEDS["pad"]))
        print(f"{name}: written to {SETS_DIR / name}")


if __name__ == "__main__":
    main()
