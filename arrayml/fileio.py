"""File I/O shared by checkpoints, data sets and results: atomic writes (to a temporary file
beside the target, then renamed into place, so a crash, a kill or a full disk mid-write leaves the
old file or none under the real name, never half a file), JSON, and file digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it replaces `path`, on error it is removed.

    The file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    The parent folders are made if they are missing.

    Args:
        path: the file to write.
        mode: the file mode, ``"wb"`` (default) or ``"w"`` for text.

    Yields:
        The open temporary file; write to it inside the ``with`` block.

    Raises:
        OSError: the folder cannot be made or written, or the disk is full (the old file under
            `path` is left as it was).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from arrayml.fileio import atomic_write
        >>> folder = tempfile.TemporaryDirectory()
        >>> target = Path(folder.name) / "notes.txt"
        >>> with atomic_write(target, "w") as f:
        ...     _ = f.write("all or nothing")
        >>> target.read_text()
        'all or nothing'
        >>> folder.cleanup()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks (``"md5"`` to check a download, ``"sha256"``
    to record which data a run used).

    Args:
        path: the file.
        algorithm: a `hashlib` algorithm name.

    Returns:
        The digest, in hexadecimal.

    Raises:
        OSError: the file cannot be read.
        ValueError: `hashlib` knows no such algorithm.
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON through a temporary file renamed into place: one-space indentation, lists of
    plain values on one line; NumPy numbers and arrays as numbers and lists; NaN and ±Infinity as
    Python's `json` writes them.

    Args:
        obj: what to write (dicts, lists, strings, numbers, NumPy numbers and arrays).
        path: the file to write.

    Returns:
        `path`, as a `pathlib.Path`.

    Raises:
        TypeError: `obj` holds something JSON cannot hold (the old file is left as it was).
        OSError: the file cannot be written.

    Example:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from arrayml.fileio import write_json
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = write_json({"loss": [0.5, 0.25], "acc": np.float32(0.75)}, Path(folder.name) / "r.json")
        >>> json.loads(path.read_text())
        {'loss': [0.5, 0.25], 'acc': 0.75}
        >>> folder.cleanup()
    """
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write(_dumps(obj, 0) + "\n")
    return path


def _dumps(o: Any, level: int) -> str:
    """JSON with one-space indentation, but lists of plain values on one line (readable, and three
    times smaller for per-step histories). NaN and ±Infinity are written as Python's json does."""
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(o, dict):
        if not o:
            return "{}"
        items = (f"{inner}{json.dumps(str(k))}: {_dumps(v, level + 1)}" for k, v in o.items())
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(o, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in o):
            return json.dumps(list(o), allow_nan=True, default=_json_default, separators=(", ", ": "))
        return "[\n" + ",\n".join(inner + _dumps(v, level + 1) for v in o) + "\n" + pad + "]"
    return json.dumps(o, allow_nan=True, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
