"""Joining the other processes, and the collectives arrayml uses, for arrays of every backend.

`init` joins the group (from the environment ``torchrun`` sets, or explicit arguments);
`ProcessGroup` sums and broadcasts arrays of any backend in flat buckets, one per dtype and
device: NumPy through ``torch.from_numpy`` (no copy), torch tensors directly, CuPy through DLPack
(no copy, onto NCCL), array-api-strict through the host. ``torch.distributed`` is the engine:
gloo over TCP for arrays on the host, NCCL for CUDA arrays.

Faults never hang: every collective and the rendezvous give up after `default_timeout` seconds
(120, or ``$ARRAYML_DIST_TIMEOUT``) with a `DistributedError` naming the rank and the operation.
"""

from __future__ import annotations

import datetime
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backend
from ..backend import Array, Namespace

#: Seconds a collective or the rendezvous waits for the other processes before giving up.
DEFAULT_TIMEOUT = 120.0
#: The environment variable that overrides `DEFAULT_TIMEOUT` (in seconds).
TIMEOUT_ENV = "ARRAYML_DIST_TIMEOUT"

#: The namespaces whose arrays cross to torch.distributed, and how.
SUPPORTED = "numpy (torch.from_numpy, no copy), torch (directly), cupy (DLPack, no copy) and array-api-strict (through the host)"


class DistributedError(RuntimeError):
    """Data-parallel training cannot go on: a process died, hung, could not join, or differs."""


def default_timeout() -> float:
    """`DEFAULT_TIMEOUT`, or the number of seconds in ``$ARRAYML_DIST_TIMEOUT``.

    Returns:
        The timeout of the collectives and the rendezvous, in seconds.

    Raises:
        ValueError: ``$ARRAYML_DIST_TIMEOUT`` is set to something other than a positive, finite
            number.
    """
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"${TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (or any launcher that sets its
    environment: ``RANK`` and ``WORLD_SIZE``).

    Returns:
        True when both ``RANK`` and ``WORLD_SIZE`` are set.
    """
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _env_int(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise DistributedError(
                f"${name} is not set: start the processes with torchrun (or set RANK, WORLD_SIZE, "
                f"MASTER_ADDR and MASTER_PORT), or pass rank= and world_size= to arrayml.distributed.init"
            )
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"${name} must be an integer, got {text!r}") from None


def local_device(xp: Namespace, spec: Any) -> Any:
    """The device this process should use when the user asked for `spec`: a bare ``"cuda"``
    becomes ``"cuda:<LOCAL_RANK>"`` (one GPU per process on each machine, as torchrun intends;
    CuPy's current device is set to it too). Anything else is returned as it is.

    Args:
        xp: the namespace the model will live on.
        spec: the device the user asked for (None: the namespace's default; for CuPy, the GPU
            ``LOCAL_RANK``).

    Returns:
        The device to use: ``"cuda:<LOCAL_RANK>"`` for torch's bare ``"cuda"`` and for CuPy,
        `spec` otherwise.

    Raises:
        DistributedError: ``$LOCAL_RANK`` is set but is not an integer.
    """
    name = backend.namespace_name(xp)
    bare_cuda = spec is not None and str(spec) == "cuda"
    if (name == "torch" and bare_cuda) or (name == "cupy" and (spec is None or bare_cuda)):
        index = _env_int("LOCAL_RANK", 0)
        if name == "cupy":
            import cupy

            cupy.cuda.Device(index).use()
        return f"cuda:{index}"
    return spec


def _first_line(exc: BaseException) -> str:
    """The useful part of a torch.distributed error: its first line, less the C++ source path."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"\s*Check the logs of the remote worker.*$", "", text)  # gloo's sign-off
    return re.sub(r"^\[[^\]]*\]\s*", "", text)


# --------------------------------------------------------------------------------------------
# Joining the other processes
# --------------------------------------------------------------------------------------------


def init(
    *, rank: int | None = None, world_size: int | None = None, local_rank: int | None = None,
    master_addr: str | None = None, master_port: int | None = None, cuda: bool = False,
    timeout: float | None = None,
) -> ProcessGroup:
    """Join the other processes and return the `ProcessGroup` (torch.distributed's default group).

    With no arguments, everything comes from the environment ``torchrun`` sets (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); otherwise the arguments
    given win and ``master_addr``/``master_port`` default to the environment, then
    127.0.0.1:29500. `cuda`: the arrays live on CUDA devices, so NCCL carries them (on the GPU
    ``LOCAL_RANK``) and gloo the host ones; otherwise gloo carries everything.

    Gives up after `timeout` seconds (default: `default_timeout`) with a `DistributedError` if the
    others do not all join: rank 0 waits `timeout`, the others try to reach it for at most about
    twice that (torch's store client retries once).

    Args:
        rank: this process's rank, in [0, world_size) (default ``$RANK``).
        world_size: the number of processes (default ``$WORLD_SIZE``).
        local_rank: this process's rank on its machine, its GPU with `cuda` (default
            ``$LOCAL_RANK``, else `rank`).
        master_addr: the address of rank 0's store (default ``$MASTER_ADDR``, else 127.0.0.1).
        master_port: its port (default ``$MASTER_PORT``, else 29500).
        cuda: the arrays live on CUDA devices (NCCL carries them; gloo the host ones).
        timeout: seconds to wait for the others (default `default_timeout`).

    Returns:
        This process's `ProcessGroup`.

    Raises:
        DistributedError: torch has no ``torch.distributed`` or (with `cuda`) no CUDA device,
            NCCL or GPU for `local_rank`; ``init`` was called before in this process; ``$RANK``
            or ``$WORLD_SIZE`` is missing (or an environment variable is not an integer);
            `rank` is outside [0, world_size); or the processes did not all meet within
            `timeout`.
        ValueError: `timeout` is not a positive number of seconds.
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError(f"this torch build ({torch.__version__}) has no torch.distributed")
    if dist.is_initialized():
        raise DistributedError("torch.distributed is already initialised in this process: call init() once")
    from_env = rank is None and world_size is None and master_addr is None and master_port is None
    rank = _env_int("RANK") if rank is None else int(rank)
    world_size = _env_int("WORLD_SIZE") if world_size is None else int(world_size)
    local_rank = _env_int("LOCAL_RANK", rank) if local_rank is None else int(local_rank)
    if not 0 <= rank < world_size:
        raise DistributedError(f"rank must be in [0, {world_size}) for a world of {world_size}, got {rank}")
    addr = master_addr or os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(master_port) if master_port is not None else _env_int("MASTER_PORT", 29500)
    seconds = default_timeout() if timeout is None else float(timeout)
    if not seconds > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    kwargs: dict[str, Any] = {}
    if cuda:
        if not torch.cuda.is_available():
            raise DistributedError(f"CUDA arrays asked for, but this torch build sees no CUDA device (torch {torch.__version__})")
        if not dist.is_nccl_available():
            raise DistributedError(f"CUDA arrays need NCCL, which this torch build ({torch.__version__}) lacks")
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {local_rank} needs GPU {local_rank}, but this machine has {torch.cuda.device_count()}: "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        engine, name = "cpu:gloo,cuda:nccl", "nccl"
        kwargs["device_id"] = torch.device("cuda", local_rank)
    else:
        engine, name = "gloo", "gloo"
    # Under torchrun the workers meet at the launcher's store (env://); explicit arguments meet
    # at a store that rank 0 opens on master_addr:master_port (tcp://).
    method = "env://" if from_env else f"tcp://{addr}:{port}"
    try:
        dist.init_process_group(engine, init_method=method, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=seconds), **kwargs)
    except (RuntimeError, ValueError) as exc:  # DistStoreError, DistNetworkError: a timeout or a refused port
        raise DistributedError(
            f"rank {rank} of {world_size} could not meet the other processes at {addr}:{port} within {seconds:g} s "
            f"({_first_line(exc)}); check that all {world_size} processes were started with the same "
            f"MASTER_ADDR and MASTER_PORT and that the port is reachable"
        ) from exc
    return ProcessGroup(rank=rank, world_size=world_size, local_rank=local_rank, backend=name, timeout=seconds,
                        address=f"{addr}:{port}")


# --------------------------------------------------------------------------------------------
# Buckets: arrays of any backend through torch.distributed
# --------------------------------------------------------------------------------------------


def _torch_view(flat: Array, xp: Namespace) -> tuple[Any, Callable[[Any], Array]]:
    """A torch tensor that torch.distributed may overwrite holding the 1-D bucket `flat` (which
    only the caller holds), and the function that turns that tensor back into an array of `xp`
    on `flat`'s device. No copy for NumPy, torch and CuPy."""
    import torch

    name = backend.namespace_name(xp)
    if name == "numpy":
        return torch.from_numpy(flat), lambda _t: flat  # shares flat's (writable, contiguous) memory
    if name == "torch":
        return flat, lambda t: t
    if name == "cupy":
        import cupy

        return torch.from_dlpack(flat), cupy.from_dlpack  # DLPack orders the two libraries' streams
    if name == "array-api-strict":
        dev = backend.device(flat)
        host = np.array(backend.to_numpy(flat), copy=True)
        return torch.from_numpy(host), lambda _t: xp.asarray(host, device=dev)
    raise DistributedError(f"arrayml.distributed communicates {SUPPORTED}; got a {name} array")


@dataclass
class ProcessGroup:
    """This process's place among the processes of data-parallel training, and the collectives
    arrayml uses, for arrays of every backend. Made by `init`.

    Attributes:
        rank: this process's rank, in [0, world_size).
        world_size: the number of processes.
        local_rank: this process's rank on its machine (its GPU).
        backend: torch.distributed's backend, ``"gloo"`` or ``"nccl"``.
        timeout: seconds a collective waits before giving up.
        address: where the processes met (``"host:port"``).
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "gloo" or "nccl"
    timeout: float  # seconds
    address: str = ""

    def _collective(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one torch.distributed call; a failure becomes a `DistributedError` that says which
        process, which operation and why (never a hang: torch gives up after the timeout)."""
        try:
            return fn()
        except RuntimeError as exc:  # DistBackendError, gloo's "Connection reset by peer", timeouts
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed, so another process died, hung or lost its "
                f"connection ({_first_line(exc)}); stopping instead of waiting (collectives give up after "
                f"{self.timeout:g} s)"
            ) from exc

    def _buckets(self, arrays: Sequence[Array]) -> list[list[int]]:
        """Indices of `arrays` grouped by (namespace, dtype, device), in first-seen order (the
        same on every process, so every process issues the same collectives in the same order)."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, a in enumerate(arrays):
            xp, dev = backend.get_namespace_and_device(a)
            groups.setdefault((backend.namespace_name(xp), backend.dtype_name(a.dtype), str(dev)), []).append(i)
        return list(groups.values())

    def start(self, arrays: Sequence[Array], *, mean: Sequence[bool] | None = None, what: str = "an all-reduce",
              src: int | None = None) -> Pending:
        """Start the collectives for `arrays` and return at once; `Pending.wait` gives the
        results. An all-reduce (sum; the entries marked `mean` divided by the world size after
        it), or with `src` a broadcast from that rank. Each bucket (one per dtype and device) is
        packed into one flat new array that torch.distributed then overwrites.

        Args:
            arrays: the arrays (of any supported backend; the same shapes and dtypes, in the
                same order, on every process).
            mean: for each array, whether it is averaged rather than summed (default: none).
            what: the operation's name in errors.
            src: the rank to broadcast from, or None for an all-reduce.

        Returns:
            The started collectives; their `Pending.wait` gives the results.

        Raises:
            TypeError: an array marked `mean` is not of a real floating dtype.
            DistributedError: another process died, hung or lost its connection, or an array
                is of a namespace torch.distributed cannot carry.
        """
        import torch.distributed as dist

        mean = [False] * len(arrays) if mean is None else list(mean)
        for a, averaged in zip(arrays, mean):
            if averaged and not backend.get_namespace(a).isdtype(a.dtype, "real floating"):
                raise TypeError(f"a mean over the processes needs floating arrays, got {backend.dtype_name(a.dtype)}")
        buckets = []
        for idx in self._buckets(arrays):
            idx.sort(key=lambda i: not mean[i])  # averaged entries first: one division of a prefix
            xp = backend.get_namespace(arrays[idx[0]])
            flat = xp.concat([xp.reshape(arrays[i], (-1,)) for i in idx])  # a fresh array: the bucket
            tensor, back = _torch_view(flat, xp)
            if src is None:
                work = self._collective(what, functools.partial(dist.all_reduce, tensor, async_op=True))
            else:
                work = self._collective(what, functools.partial(dist.broadcast, tensor, src=src, async_op=True))
            n_mean = sum(backend.prod(tuple(arrays[i].shape)) for i in idx if mean[i])
            buckets.append(_Bucket(xp, idx, [tuple(arrays[i].shape) for i in idx], tensor, back, work, n_mean))
        return Pending(self, buckets, len(arrays), what)

    def all_reduce_sum(self, arrays: Sequence[Array], *, what: str = "an all-reduce") -> list[Array]:
        """The element-wise sums of `arrays` over all processes (new arrays; the inputs are left
        alone). One collective per dtype and device.

        Args:
            arrays: this process's arrays (the same shapes and dtypes on every process).
            what: the operation's name in errors.

        Returns:
            The sums, one per array, in the arrays' namespaces and devices.

        Raises:
            DistributedError: another process died, hung or lost its connection.
        """
        return self.start(arrays, what=what).wait()

    def all_reduce_mean(self, arrays: Sequence[Array], *, what: str = "an all-reduce") -> list[Array]:
        """The element-wise means over all processes: summed, then divided by the world size
        here, in sight (not ``ReduceOp.AVG``, whose support differs between backends and versions).

        Args:
            arrays: this process's arrays, of real floating dtypes.
            what: the operation's name in errors.

        Returns:
            The means, one per array, in the arrays' namespaces and devices.

        Raises:
            TypeError: an array is not of a real floating dtype.
            DistributedError: another process died, hung or lost its connection.
        """
        return self.start(arrays, mean=[True] * len(arrays), what=what).wait()

    def broadcast(self, arrays: Sequence[Array], *, src: int = 0, what: str = "a broadcast") -> list[Array]:
        """Rank `src`'s `arrays` on every process (new arrays).

        Args:
            arrays: this process's arrays (rank `src`'s are sent; the others' give the shapes
                and dtypes, the same on every process).
            src: the rank whose arrays every process gets.
            what: the operation's name in errors.

        Returns:
            Rank `src`'s arrays, in this process's namespaces and devices.

        Raises:
            DistributedError: another process died, hung or lost its connection.
        """
        return self.start(arrays, what=what, src=src).wait()

    def all_gather_object(self, obj: Any, *, what: str = "an exchange of descriptions") -> list[Any]:
        """Every process's `obj` (a small picklable value), in rank order.

        Args:
            obj: this process's value.
            what: the operation's name in errors.

        Returns:
            The values of ranks 0, 1, ..., world_size - 1.

        Raises:
            DistributedError: another process died, hung or lost its connection.
        """
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        self._collective(what, lambda: dist.all_gather_object(gathered, obj))
        return gathered

    def check_identical(self, description: dict[str, Any], *, what: str = "model") -> None:
        """Refuse to go on unless every process passes the same `description` (made by
        `describe_model`): a `DistributedError`, raised on every process, naming each difference
        from rank 0 (parameter names, shapes, dtypes, backend...).

        Args:
            description: this process's description (`describe_model`).
            what: what is described, in the error (``"model"``).

        Raises:
            DistributedError: the descriptions differ (on every process), or another process
                died, hung or lost its connection.
        """
        everyone = self.all_gather_object(description, what=f"the start-up comparison of the {what}s")
        problems = []
        for r, theirs in enumerate(everyone[1:], start=1):
            problems += [f"rank {r}: {p}" for p in _differences(everyone[0], theirs, r)]
        if problems:
            raise DistributedError(
                f"the processes built different {what}s, refused at start-up (data-parallel training needs the same "
                f"{what} everywhere); differences from rank 0: " + "; ".join(problems)
            )

    def batch_norm_sync(self) -> Callable[[list[Array]], list[Array]]:
        """The function synchronized batch norm takes at construction (``BatchNorm1d(...,
        sync=group.batch_norm_sync())``, ``MLP(..., batch_norm_sync=...)``): it sums a list of
        arrays over the processes.

        Returns:
            ``f(arrays)``: the element-wise sums of the arrays over every process.
        """
        return functools.partial(self.all_reduce_sum, what="synchronized batch norm")

    def shutdown(self) -> None:
        """Leave the group (``destroy_process_group``); safe to call twice."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


@dataclass
class _Bucket:
    xp: Namespace
    index: list[int]  # positions of its arrays in the caller's list
    shapes: list[tuple[int, ...]]
    tensor: Any  # the torch view that torch.distributed writes
    back: Callable[[Any], Array]  # that tensor as an array of xp
    work: Any  # torch.distributed's handle
    n_mean: int  # how many leading entries to divide by the world size


class Pending:
    """Collectives started by `ProcessGroup.start`, not yet waited for.

    Args:
        group: the group that started them.
        buckets: the started collectives, one per dtype and device.
        n: how many arrays were given.
        what: the operation's name in errors.
    """

    def __init__(self, group: ProcessGroup, buckets: list[_Bucket], n: int, what: str) -> None:
        self.group, self.buckets, self.n, self.what = group, buckets, n, what

    def wait(self) -> list[Array]:
        """Wait for every bucket (on a GPU: make the current stream wait; the host does not),
        divide the averaged entries by the world size, and unpack: arrays of the original shapes,
        views of the buckets, which nobody else holds.

        Returns:
            The results, one per array given to `ProcessGroup.start`, in its order.

        Raises:
            DistributedError: another process died, hung or lost its connection.
        """
        out: list[Array] = [None] * self.n
        for b in self.buckets:
            self.group._collective(self.what, b.work.wait)
            if b.n_mean:
                b.tensor[:b.n_mean].div_(self.group.world_size)  # our own bucket: written in place, on the device
            flat = b.back(b.tensor)
            at = 0
            for i, shape in zip(b.index, b.shapes):
                size = backend.prod(shape)
                out[i] = b.xp.reshape(flat[at:at + size], shape)
                at += size
        return out


def _differences(mine: dict[str, Any], theirs: dict[str, Any], rank: int) -> list[str]:
    problems = []
    for key in sorted(set(mine) | set(theirs), key=str):
        a, b = mine.get(key), theirs.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            if missing:
                problems.append(f"{key} missing {missing}")
            if extra:
                problems.append(f"{key} has extra {extra}")
            for name in sorted(set(a) & set(b)):
                (sa, da), (sb, db) = a[name], b[name]
                if sa != sb:
                    problems.append(f"{name}: shape {tuple(sb)} on rank {rank}, {tuple(sa)} on rank 0")
                if da != db:
                    problems.append(f"{name}: dtype {db} on rank {rank}, {da} on rank 0")
        else:
            problems.append(f"{key} {b!r} on rank {rank}, {a!r} on rank 0")
    return problems
