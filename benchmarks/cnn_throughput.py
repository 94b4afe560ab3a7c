#!/usr/bin/env python
"""One training epoch of a small convolutional network, measured side by side in one process.

    python benchmarks/cnn_throughput.py                       # every variant, 3 rounds
    python benchmarks/cnn_throughput.py --repeats 5 --json results/bench/cnn_throughput.json
    python benchmarks/cnn_throughput.py --quick               # 10 steps an epoch: does it run?

The network (convolution issue's): ``CNN(3, 32, [16, 32, 64], 10)``: three stages of two 3x3
convolutions (no bias), each followed by BatchNorm2d and ReLU, 2x2 max pooling after each stage
(32 → 16 → 8 → 4 pixels), the global average of the 64 channels and a Linear to the 10 classes
(72,954 parameters). SGD (lr 0.005, momentum 0.9), batch 128, float32, 45,000 random images of
3x32x32 (CIFAR-10's training split after its 5,000 validation images; the timing does not
depend on the pixels), the last partial batch dropped: 351 steps.

Variants (each from the same weights, on the same batches):
  arrayml/numpy                  arrayml's CNN + SoftmaxCrossEntropy + SGD (ArraymlLearner.train_step)
                                 on NumPy: im2col blocks and BLAS (arrayml.backend._numpy_layers)
  arrayml/torch (cpu)            the same step on PyTorch tensors, eager: torch's convolution and its
                                 gradient functions, torch's fused batch norm
  arrayml/torch (cpu) compiled   the same step compiled as one function by torch.compile
  arrayml/jax (cpu) compiled     the same step compiled by jax.jit (buffers donated)
  torch.nn (cpu)                 the same network in plain PyTorch: torch.nn + autograd +
                                 torch.optim.SGD, the reference every ratio divides by

How it measures, as benchmarks/train_throughput.py (whose machinery it uses): the first step
of each variant timed on its own (a compiled variant's compiling), 10 steps from the same
weights after which every variant must hold the reference's weights (relative difference
``AGREEMENT``: float32 rounding, which batch norm's divisions by small spreads magnify), a
warm-up epoch, then --repeats rounds of one epoch of every variant in turn (A B C D E, A B C D
E, ...) after a pause (--settle); medians over the rounds, ratios to torch.nn taken round by
round. --threads N runs every library on N threads (torch.set_num_threads, the BLAS libraries
through threadpoolctl, XLA's CPU client through XLA_FLAGS): the issue's reference figure for
torch.nn, 52 s an epoch, is one thread's; by default each library keeps its own setting (all the
cores). Peak memory: each variant runs --memory-steps steps in a fresh process of its own, whose
peak resident set (the random images included, 553 MB of them; ``ru_maxrss``) is printed. Ratios
within one run are what to compare; no absolute time means anything across machines, and none
measured on a shared, busy machine means much at all.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import arrayml as am
from arrayml import backend
from arrayml.training import ArraymlLearner


def _machinery() -> ModuleType:
    """benchmarks/train_throughput.py, imported by its path (the benchmarks are scripts, not a
    package): its Variant, timing rounds, library report and agreement measure."""
    path = Path(__file__).resolve().with_name("train_throughput.py")
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tt = _machinery()

N_TRAIN, CHANNELS, SIZE, N_CLASSES, BATCH, LR, MOMENTUM = 45000, 3, 32, 10, 128, 0.005, 0.9
WIDTHS = [16, 32, 64]
#: How far apart (relative, all parameters together) the variants may be after 1 and after 10
#: steps from the same weights: float32 rounding (measured: ~1e-8 after 1 step, 1e-6 to 3e-5
#: after 10), where the 10 steps move the weights by `MOVES` or more, so a wrong gradient or
#: update is off by far more. The rate is small for this: on random labels with momentum 0.9,
#: from lr ≈ 0.01 on, 10 steps magnify float32 rounding differences through the 6 batch norms
#: to 1e-4 and beyond (1e-3 at lr 0.05), while float64 runs still agree to 1e-16: a check at such
#: rates would be chaos, not a check. The rate does not change the time.
AGREEMENT = 1e-4
MOVES = 1e-2
REFERENCE = "torch.nn (cpu)"
VARIANTS = ["arrayml/numpy", "arrayml/torch (cpu)", "arrayml/torch (cpu) compiled", "arrayml/jax (cpu) compiled",
            REFERENCE]


def network(**placement: Any) -> am.CNN:
    """The benchmark's network, its weights from seed 0."""
    return am.CNN(CHANNELS, SIZE, WIDTHS, N_CLASSES, rng=0, **placement)


def images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random float32 images (drawn as float32: no float64 copy of 1 GB on the way) and labels."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, CHANNELS, SIZE, SIZE), dtype=np.float32), rng.integers(0, N_CLASSES, size=n)


def torch_network(model: am.Sequential, device: str = "cpu") -> Any:
    """A torch.nn.Sequential computing what `model` (a CNN) computes, with its very weights: the
    examples' one torch.nn mirror of arrayml networks (``arrayml_app.torch_mirror``), float32."""
    import torch

    from arrayml_app.torch_mirror import torch_mirror

    return torch_mirror(model, device=device, dtype=torch.float32)


def build_variant(label: str, x: np.ndarray, y: np.ndarray) -> Any:
    """The variant named `label`, from the network's seed-0 weights."""
    if label == REFERENCE:
        import torch

        net = torch_network(network())
        return tt.torch_loop_variant(net, torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM), x, y, "cpu",
                                     batch=BATCH)
    xp_name = label.split("/")[1].split(" ")[0]
    where = backend.placement(xp_name, None if xp_name == "numpy" else "cpu", "float32")
    model = network(xp=where.xp, device=where.device, dtype=where.dtype)
    learner = ArraymlLearner(model, am.SGD(LR, momentum=MOMENTUM), compile=label.endswith("compiled"))
    return tt.learner_variant(learner, x, y, LR, batch=BATCH)


def available(labels: list[str]) -> list[str]:
    """The variants of `labels` whose libraries are installed here."""
    out = []
    for label in labels:
        needs = "torch" if "torch" in label else "jax" if "jax" in label else "numpy"
        if needs == "numpy" or importlib.util.find_spec(needs) is not None:
            out.append(label)
    return out


def peak_memory(label: str, steps: int, n_train: int, threads: int | None = None) -> dict[str, float]:
    """The peak resident set of a fresh process that makes the images and runs `steps` steps of
    the variant (`--peak-memory-of`), in MB."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peak-memory-of", label, "--memory-steps", str(steps),
           "--samples", str(n_train), *(["--threads", str(threads)] if threads else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise SystemExit(f"the memory measurement of {label} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


#: Keeps threadpoolctl's BLAS limit in force for the whole run (a module-level reference).
_LIMITS: list[Any] = []


def use_threads(n: int) -> dict[str, Any]:
    """Run every library on `n` threads, before any of them computes: torch's intra-op pool, the
    BLAS libraries (threadpoolctl, from the ``bench`` extra) and XLA's CPU client (its flags are
    read when JAX starts, so JAX must not have been imported). What was set, for the report."""
    done: dict[str, Any] = {"threads": n}
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(n)
        done["torch"] = torch.get_num_threads()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        done["blas"] = 'not limited: pip install -e ".[bench]" (threadpoolctl)'
    else:
        _LIMITS.append(threadpool_limits(limits=n, user_api="blas"))
        done["blas"] = n
    if "jax" in sys.modules:
        done["xla"] = "not limited: JAX was imported before --threads took effect"
    elif n == 1:
        flag = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
        done["xla"] = flag
    else:  # XLA's CPU client has no flag for a thread count: one thread, or every core
        cores = os.cpu_count() or 1
        done["xla"] = f"every core ({cores})" + ("" if n >= cores else f": XLA cannot be limited to {n} threads")
    return done


def _measure_own_peak(label: str, steps: int, n_train: int) -> int:
    x, y = images(n_train)
    data_mb = (x.nbytes + y.nbytes) / 2**20
    build_variant(label, x, y).epoch(0, steps=steps)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "data_mb": data_mb, "steps": steps}))
    return 0


def peak_rss_mb() -> float:
    """This process's peak resident set in MB: Linux's VmHWM (the high-water mark of this
    program's memory; ``ru_maxrss`` would also count the parent's pages at the fork that started
    it), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    per_mb = 2**20 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / per_mb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="measured rounds: epochs per variant (median reported)")
    p.add_argument("--variants", default=None, help="only these variants, ','-separated labels (default: all available)")
    p.add_argument("--settle", type=float, default=0.25, help="seconds of pause before each timed epoch")
    p.add_argument("--samples", type=int, default=N_TRAIN, help="training images (an epoch: samples // 128 steps)")
    p.add_argument("--memory-steps", type=int, default=30, help="steps of each variant's peak-memory process (0: none)")
    p.add_argument("--threads", type=int, default=None, help="run every library on this many threads (default: "
                   "each its own setting)")
    p.add_argument("--quick", action="store_true", help="10 steps an epoch, 1 round, 3 memory steps: does it run?")
    p.add_argument("--json", default=None, help="write the numbers to this JSON file (default: none written)")
    p.add_argument("--peak-memory-of", default=None, help=argparse.SUPPRESS)  # the memory process (internal)
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.repeats, args.settle, args.memory_steps = 10 * BATCH, 1, 0.0, min(args.memory_steps, 3)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be a positive number, got {args.threads}")
    threads = use_threads(args.threads) if args.threads else None
    if args.peak_memory_of is not None:
        return _measure_own_peak(args.peak_memory_of, args.memory_steps, args.samples)
    if args.samples < 10 * BATCH:
        p.error(f"--samples must be at least {10 * BATCH} (the 10 steps of the agreement check)")
    labels = available(VARIANTS)
    if args.variants is not None:
        wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = sorted(set(wanted) - set(labels))
        if unknown:
            p.error(f"unknown or unavailable variants {unknown}; available: {labels}")
        labels = [label for label in labels if label in wanted]

    x, y = images(args.samples)
    n_steps = args.samples // BATCH
    libs = tt.library_info()  # (after use_threads: the thread counts the variants run with)
    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/cnn_throughput.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"platform": platform.platform(), "processor": tt._processor(), "cpus": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()[0]},
        "libraries": libs,
        "settings": {"network": network().config(), "parameters": network().num_parameters(), "samples": args.samples,
                     "batch": BATCH, "steps": n_steps, "dtype": "float32", "optimizer": f"SGD(lr={LR}, momentum={MOMENTUM})",
                     "repeats": args.repeats, "settle_seconds": args.settle,
                     "threads": threads or "each library's own setting"},
    }
    print(f"{report['machine']['processor']}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(tt.describe_libraries(libs))

    variants = {label: build_variant(label, x, y) for label in labels}
    # the same steps from the same weights (the first is every variant's first call, where the
    # compiled ones compile): every variant must hold the reference's weights after 1 and 10
    initial = [np.asarray(a) for a in network().parameters().values()]
    initial = [np.reshape(a, (-1,)) if a.ndim == 2 and a.shape[0] == 1 else a for a in initial]  # the Linear's bias
    for v in variants.values():
        v.epoch(0, steps=1)
    reference = variants[REFERENCE if REFERENCE in variants else labels[0]].params()
    after_one = {name: tt.relative_difference(v.params(), reference) for name, v in variants.items()}
    for v in variants.values():
        v.epoch(1, steps=9)
    reference = variants[REFERENCE if REFERENCE in variants else labels[0]].params()
    after_ten = {name: tt.relative_difference(v.params(), reference) for name, v in variants.items()}
    moved = tt.relative_difference(reference, initial)
    if max(after_ten.values()) > AGREEMENT or max(after_one.values()) > AGREEMENT or moved < MOVES:
        raise SystemExit(f"variants disagree with {REFERENCE}: relative parameter differences after 1 step {after_one}, "
                         f"after 10 {after_ten}, where the 10 steps moved the weights by {moved:.1e}")
    for v in variants.values():  # warm-up epoch
        v.epoch(0)
    times, faults = tt.time_epochs(variants, args.repeats, args.settle)
    memory = ({label: peak_memory(label, args.memory_steps, args.samples, args.threads) for label in labels}
              if args.memory_steps else {})

    rows = []
    for name, ts in times.items():
        row = {"variant": name, "median_seconds": statistics.median(ts), "min_seconds": min(ts), "max_seconds": max(ts),
               "all_seconds": ts, "first_call_seconds": variants[name].first_call,
               "page_faults_per_step": statistics.median(faults[name]) / n_steps,
               "ratio_to_torch_nn": tt.spread([a / b for a, b in zip(ts, times[REFERENCE])]) if REFERENCE in times else None,
               **({"peak_rss_mb": memory[name]["peak_rss_mb"]} if name in memory else {})}
        rows.append(row)
    report.update({"relative_parameter_difference_after_1_step": after_one,
                   "relative_parameter_difference_after_10_steps": after_ten, "relative_movement_in_10_steps": moved,
                   "rows": rows,
                   "memory": {"steps": args.memory_steps, "data_mb": next(iter(memory.values()))["data_mb"]} if memory else None})

    print(f"\nCNN 3x32x32 -> {'-'.join(map(str, WIDTHS))} -> 10 ({network().num_parameters()} parameters), {n_steps} steps "
          f"of {BATCH}, float32, SGD with momentum")
    print(f"{'variant':<32}{'epoch s: median (min-max)':>28}{'vs torch.nn: median (spread)':>30}{'first call s':>14}"
          f"{'peak RSS MB':>13}{'faults/step':>13}")
    for row in rows:
        first = "" if row["first_call_seconds"] is None else f"{row['first_call_seconds']:.2f}"
        rss = f"{row['peak_rss_mb']:.0f}" if "peak_rss_mb" in row else ""
        print(f"{row['variant']:<32}{row['median_seconds']:>11.2f} ({row['min_seconds']:.2f}-{row['max_seconds']:.2f})"
              f"{tt._ratio_text(row['ratio_to_torch_nn']):>32}{first:>14}{rss:>13}{row['page_faults_per_step']:>13.1f}")
    print(f"from the same weights, every variant holds {REFERENCE}'s weights to a relative "
          f"{max(after_one.values()):.1e} after 1 step and {max(after_ten.values()):.1e} after 10 (which moved them by "
          f"{moved:.1e})")
    if memory:
        print(f"peak RSS: a fresh process making the {report['memory']['data_mb']:.0f} MB of images and running "
              f"{args.memory_steps} steps of the variant")
    if args.json:
        tt.write_report(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
