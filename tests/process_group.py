"""Groups of real processes for the data-parallel tests, started as torchrun starts them (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment; gloo on loopback), each group
bounded by a deadline: a test never hangs. Used by tests/test_distributed.py and by the
application's examples/tests/test_cli_distributed.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

#: Seconds a spawned group may take in all (generous: 2 shared cores), and the collective timeout.
GROUP_DEADLINE = 300
DIST_TIMEOUT = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_env(rank: int, world: int, port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "ARRAYML_DIST_TIMEOUT": str(DIST_TIMEOUT)})
    env.update(extra)
    return env


def plain_env() -> dict[str, str]:
    """The environment of a process started without a group (torchrun adds its own)."""
    env = group_env(0, 1, 0)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key)
    return env


def start(args: list, world: int, *, ranks: list[int] | None = None, **extra: str) -> list[subprocess.Popen]:
    """Processes `ranks` (default: all) of a group of `world`, as torchrun would start them."""
    port = free_port()
    return [subprocess.Popen([sys.executable, *map(str, args)], env=group_env(r, world, port, **extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in (range(world) if ranks is None else ranks)]


def finish(procs: list[subprocess.Popen], deadline: float = GROUP_DEADLINE) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each process; a group still running at the deadline is
    killed and the test fails: a hang is a failure, never a wait."""
    end = time.monotonic() + deadline
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(end - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process of the group still ran after {deadline} s: {[q.args for q in procs]}")
        results.append((p.returncode, out, err))
    return results


def all_ok(results: list[tuple[int, str, str]]) -> None:
    for rank, (rc, _, err) in enumerate(results):
        assert rc == 0, f"rank {rank} exited with {rc}:\n{err[-3000:]}"
