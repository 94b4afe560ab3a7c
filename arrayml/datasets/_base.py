"""What every data set of arrayml shares: where data is looked for, and a verified download.

Where a data set's file is looked for, in order: the ``data_dir`` argument (``--data-dir``), the
``ARRAYML_DATA`` environment variable, then ``~/.cache/arrayml``. Each may be a folder holding the
file or the path of the file itself. Set ``ARRAYML_OFFLINE=1`` to never download.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from ..fileio import atomic_write


class DataError(RuntimeError):
    """The data set is missing, corrupt, or could not be downloaded."""


def offline() -> bool:
    """True when ``ARRAYML_OFFLINE`` forbids downloads."""
    return os.environ.get("ARRAYML_OFFLINE", "") not in ("", "0")


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The places searched, in order: `data_dir`, ``$ARRAYML_DATA``, ``~/.cache/arrayml``."""
    out = []
    if data_dir is not None:
        out.append(Path(data_dir).expanduser())
    if os.environ.get("ARRAYML_DATA"):
        out.append(Path(os.environ["ARRAYML_DATA"]).expanduser())
    out.append(Path.home() / ".cache" / "arrayml")
    return out


def file_in(place: Path, name: str) -> Path:
    """`place` itself if it names a file of `name`'s kind (same suffix), else ``place / name``."""
    return place if place.suffix == Path(name).suffix else place / name


def download(url: str, dest: Path, *, md5: str, timeout: float = 30.0, progress: bool | None = None) -> Path:
    """Download `url` to `dest` via a temporary file, checking the MD5 before renaming it in.

    `progress`: a progress bar (None: only when stderr is a terminal, so logs get no ``\\r``).
    """
    from tqdm.auto import tqdm

    try:
        with atomic_write(dest) as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.md5()
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}", disable=None if progress is None else not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
            if digest.hexdigest() != md5:  # raising here discards the temporary file
                raise DataError(f"download of {url} is corrupt or incomplete: MD5 {digest.hexdigest()}, expected {md5}")
    except OSError as exc:
        raise DataError(f"could not download {url}: {exc}") from None
    return dest
