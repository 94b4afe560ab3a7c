"""Stopping a run from outside. Ctrl-C (SIGINT) raises `KeyboardInterrupt`; SIGTERM, what
``kill``, ``timeout`` and job schedulers send, raises `Terminated`, a `KeyboardInterrupt`, so a
run ends the same way for both: the checkpoint of its last finished epoch and its partial results
are written, and the command line prints how to resume and exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def signal_name(interrupt: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, the first SIGTERM raises `Terminated` where the program is; a second
    one, while the run is saving its work, ends the process as SIGTERM does by default (the
    checkpoint being written is replaced atomically, so the previous one stays whole). Only the
    main thread can take signals: elsewhere the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
