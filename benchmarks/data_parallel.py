#!/usr/bin/env python
"""Data-parallel training on one machine: processes against threads, and what the all-reduce costs.

    python benchmarks/data_parallel.py                          # numpy: 3 rounds x 2 epochs per variant
    python benchmarks/data_parallel.py --xp torch --rounds 5 --json results/bench/data_parallel.json

Times one training epoch of the assignment's MLP (3072-128-10, batch 128, float32, SGD; 351 steps
of random data, as many as CIFAR-10's 45000 training images give) in three ways:

  1 process  x 1 thread     the baseline
  1 process  x 2 threads    the BLAS (or torch) thread pool uses two cores
  2 processes x 1 thread    arrayml.distributed on gloo: each process takes 64 rows of each
                            global batch of 128 and all-reduces the gradients every step, after
                            the backward pass, in one bucket (DataParallelLearner(overlap=False))
  2 processes x 1 thread, overlapped
                            the same, but each layer's gradients are all-reduced asynchronously
                            as soon as its backward has run, and waited for before the step: the
                            overlap of communication with backward that DDP does (the default)

and prints the scaling efficiency (T₁ / (N·T_N)), the measured all-reduce time per step against
the bytes it moves, and the time of all-reduces of 4 KiB to 16 MiB on this machine. Each variant
runs in its own processes (thread counts are fixed before NumPy loads), --repeats epochs after a
warm-up; --rounds rounds run every variant in turn, so that a change in the machine's load falls
on all of them, and each epoch time is the median over all rounds. Compare ratios within one run:
on a shared machine absolute times move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

N_IN, HIDDEN, N_CLASSES, BATCH, LR = 3072, [128], 10, 128, 0.01
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
SWEEP_BYTES = [4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]


# --------------------------------------------------------------------------------------------
# Inside one measured process
# --------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time `args.repeats` epochs (after a warm-up) in this process, alone or as one rank."""
    import numpy as np

    import arrayml as am
    from arrayml import backend, distributed
    from arrayml.data import Splits
    from arrayml.schedules import Constant
    from arrayml.training import ArraymlLearner, train_epoch

    where = backend.placement(args.xp, None, "float32")
    if backend.namespace_name(where.xp) == "torch":
        import torch

        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.steps * BATCH
    y = rng.integers(0, N_CLASSES, size=n).astype(np.int64)
    x = rng.normal(size=(n, N_IN)).astype(np.float32)
    tiny_x, tiny_y = x[:BATCH], y[:BATCH]
    data = Splits(x, y, tiny_x, tiny_y, tiny_x, tiny_y).to(where.xp, where.device, where.dtype)
    del x
    model = am.MLP(N_IN, HIDDEN, N_CLASSES, xp=where.xp, device=where.device, rng=0)
    learner: Any = ArraymlLearner(model, am.SGD(LR))
    group = None
    comm: list[float] = []
    if args.world > 1:
        group = distributed.init()
        learner = distributed.DataParallelLearner(learner, group, batch_size=BATCH, overlap=args.overlap)
        if not args.overlap:  # time the gradient all-reduce itself, from start to finish
            finish = learner.reducer.finish  # starts the one bucket after backward, then waits

            def timed_finish(*a: Any) -> Any:
                began = time.perf_counter()
                out = finish(*a)
                comm.append(time.perf_counter() - began)
                return out

            learner.reducer.finish = timed_finish
    epoch_kwargs = {"epochs": args.repeats + 1, "batch_size": BATCH, "seed": 0, "schedule": Constant(LR), "progress": False}
    times = []
    for epoch in range(args.repeats + 1):  # epoch 0 is the warm-up
        if group is not None:
            group.all_reduce_sum([np.zeros(1)], what="the start line")  # start together
        comm.clear()
        t0 = time.perf_counter()
        train_epoch(learner, data.x_train, data.y_train, epoch=epoch, **epoch_kwargs)
        times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"epoch_seconds": times[1:], "steps": args.steps}
    if comm:
        n_floats = model.num_parameters() + 2  # the gradients, plus the loss share and correct count
        out["allreduce_seconds_per_step"] = statistics.median(comm)
        out["allreduce_bytes"] = n_floats * 4
    if group is not None and not args.overlap:
        out["sweep"] = _sweep(group, np)
    if group is not None:
        group.shutdown()
    return out


def _sweep(group: Any, np: Any) -> list[dict[str, float]]:
    """Median time of an all-reduce of float32 buckets of each size in `SWEEP_BYTES`."""
    rows = []
    for size in SWEEP_BYTES:
        bucket = [np.ones(size // 4, dtype=np.float32)]
        reps = max(5, min(200, (8 << 20) // size))
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            group.all_reduce_sum(bucket, what="the sweep")
            ts.append(time.perf_counter() - t)
        rows.append({"bytes": size, "seconds": statistics.median(ts)})
    return rows


# --------------------------------------------------------------------------------------------
# The driver: each variant in fresh processes
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_variant(args: argparse.Namespace, *, world: int, threads: int, overlap: bool = False) -> dict[str, Any]:
    """Start `world` processes of this script with `threads` threads each; rank 0's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        procs = []
        for rank in range(world):
            env = dict(os.environ, **{v: str(threads) for v in THREAD_VARIABLES})
            if world > 1:
                env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(port))
            cmd = [sys.executable, __file__, "--worker", str(Path(tmp) / f"rank{rank}.json"), "--xp", args.xp,
                   "--steps", str(args.steps), "--repeats", str(args.repeats), "--threads", str(threads),
                   "--world", str(world)] + (["--overlap"] if overlap else [])
            procs.append(subprocess.Popen(cmd, env=env))
        deadline = time.monotonic() + args.timeout
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise RuntimeError(f"the {world}-process variant ran past --timeout {args.timeout} s") from None
            if p.returncode != 0:
                raise RuntimeError(f"a process of the {world}-process variant exited with {p.returncode}")
        return json.loads((Path(tmp) / "rank0.json").read_text())


def model_table(compute_s: float, n_bytes: int) -> list[dict[str, float]]:
    """A model, not a measurement: step time on N machines = compute/N + ring all-reduce
    2(N−1)/N · bytes / bandwidth (no latency, no overlap, perfect compute scaling)."""
    rows = []
    for gbit in (10, 100):
        for n in (1, 2, 8, 64):
            comm = 2 * (n - 1) / n * n_bytes / (gbit * 1e9 / 8)
            step = compute_s / n + comm
            rows.append({"machines": n, "gbit_per_s": gbit, "compute_ms": 1e3 * compute_s / n, "allreduce_ms": 1e3 * comm,
                         "step_ms": 1e3 * step, "speedup": compute_s / step, "efficiency": compute_s / step / n})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xp", default="numpy", choices=["numpy", "torch"], help="array backend (CPU)")
    parser.add_argument("--steps", type=int, default=351, help="steps of batch 128 per epoch (default: 351, CIFAR-10's)")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per variant and round, after a warm-up epoch")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all variants in turn (default: 3)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one variant may take before it is killed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--overlap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        result = measure(args)
        if int(os.environ.get("RANK", "0")) == 0:
            args.worker.write_text(json.dumps(result))
        return 0

    plan = {  # name: (processes, threads per process, overlap)
        "1 process x 1 thread": (1, 1, False),
        "1 process x 2 threads": (1, 2, False),
        "2 processes x 1 thread": (2, 1, False),
        "2 processes x 1 thread, overlapped": (2, 1, True),
    }
    # Rounds of every variant in turn, so that a change in the machine's load falls on all of them.
    variants: dict[str, dict[str, Any]] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, (w, t, o) in plan.items():
            result = run_variant(args, world=w, threads=t, overlap=o)
            v = variants.setdefault(name, {"epoch_seconds": [], "allreduce_seconds_per_step": [], "sweep": []})
            v["epoch_seconds"] += result["epoch_seconds"]
            if "allreduce_seconds_per_step" in result:
                v["allreduce_seconds_per_step"].append(result["allreduce_seconds_per_step"])
                v["allreduce_bytes"] = result["allreduce_bytes"]
            v["sweep"].append(result.get("sweep", []))
        load.append(os.getloadavg()[0])
    for v in variants.values():
        v["allreduce_seconds_per_step"] = statistics.median(v["allreduce_seconds_per_step"]) if v["allreduce_seconds_per_step"] else None
        rounds = [r for r in v.pop("sweep") if r]
        if rounds:
            v["sweep"] = [{"bytes": row["bytes"], "seconds": statistics.median(r[i]["seconds"] for r in rounds)}
                          for i, row in enumerate(rounds[0])]
    t1 = statistics.median(variants["1 process x 1 thread"]["epoch_seconds"])
    print(f"\none epoch of {args.steps} steps, MLP {N_IN}-{'-'.join(map(str, HIDDEN))}-{N_CLASSES}, batch {BATCH}, {args.xp}: "
          f"median (and fastest) of {args.rounds} rounds x {args.repeats} epochs; load average {min(load):.1f} to {max(load):.1f}")
    print(f"{'variant':<36} {'epoch s':>8} {'fastest':>8} {'speedup':>8} {'efficiency':>10}")
    for name, v in variants.items():
        t = statistics.median(v["epoch_seconds"])
        workers = plan[name][0] * plan[name][1]  # cores asked for
        v["median_epoch_seconds"] = t
        v["speedup"] = t1 / t
        v["efficiency"] = t1 / t / workers
        print(f"{name:<36} {t:8.2f} {min(v['epoch_seconds']):8.2f} {t1 / t:8.2f} {t1 / t / workers:10.2f}")
    dp = variants["2 processes x 1 thread"]
    step_s, comm_s, n_bytes = dp["median_epoch_seconds"] / args.steps, dp["allreduce_seconds_per_step"], dp["allreduce_bytes"]
    print(f"\ngradient all-reduce (2 processes, gloo, loopback): {1e3 * comm_s:.2f} ms per step for {n_bytes / 1e6:.2f} MB "
          f"= {100 * comm_s / step_s:.0f}% of a {1e3 * step_s:.1f} ms step; {n_bytes / comm_s / 1e9:.2f} GB/s")
    print(f"{'all-reduce of':>14} {'ms':>8} {'GB/s':>8}")
    for row in dp["sweep"]:
        print(f"{row['bytes'] / 1024:>11.0f} KiB {1e3 * row['seconds']:8.3f} {row['bytes'] / row['seconds'] / 1e9:8.2f}")
    compute_s = t1 / args.steps
    table = model_table(compute_s, n_bytes)
    print(f"\nA MODEL, not a measurement: compute {1e3 * compute_s:.1f} ms per step (1 process x 1 thread here) / N "
          f"+ ring all-reduce 2(N-1)/N x {n_bytes / 1e6:.2f} MB / bandwidth")
    print(f"{'machines':>8} {'Gbit/s':>7} {'step ms':>8} {'all-reduce ms':>14} {'speedup':>8} {'efficiency':>10}")
    for row in table:
        print(f"{row['machines']:>8} {row['gbit_per_s']:>7} {row['step_ms']:8.2f} {row['allreduce_ms']:14.3f} "
              f"{row['speedup']:8.2f} {row['efficiency']:10.2f}")
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "xp": args.xp, "steps": args.steps, "repeats": args.repeats, "rounds": args.rounds, "load_average": load,
        "variants": variants, "model": table,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
