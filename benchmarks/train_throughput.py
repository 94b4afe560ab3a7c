#!/usr/bin/env python
"""One training epoch of the assignment's MLP, measured side by side in one process.

    python benchmarks/train_throughput.py                      # 3072-128-10 and 3072-512-256-128-10
    python benchmarks/train_throughput.py --repeats 7 --json results/bench/train_throughput.json

Variants (same data, same batches, batch 128, float32, 45000 samples, last partial batch dropped):
  arrayml/<backend>   arrayml's MLP + SoftmaxCrossEntropy + SGD on each available backend
  torch.nn            the same network in plain PyTorch: torch.nn + autograd + torch.optim.SGD
  numpy loop          a plain hand-written NumPy loop (the assignment's style, in-place updates)
and the machine's float32 matrix-multiply rate on the network's own matmul shapes, so that the
effective fraction of peak of each variant is printed. Each time is the median of --repeats
epochs after a warm-up epoch. Ratios are against plain torch.nn in the same run; no absolute time
means anything across machines.

The data are random (the timing does not depend on the pixels), so no data set is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import arrayml as am
from arrayml import backend
from arrayml.data import train_batches
from arrayml.training import ArraymlLearner

N_TRAIN, N_IN, N_CLASSES, BATCH, LR = 45000, 3072, 10, 128, 0.01


def epoch_flops(hidden: list[int], n_steps: int) -> float:
    """Matmul FLOPs an epoch needs: forward, weight gradients, and input gradients of every layer
    but the first (which no implementation here computes)."""
    sizes = [N_IN, *hidden, N_CLASSES]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    first = sizes[0] * sizes[1]
    return 2.0 * BATCH * (3 * macs - first) * n_steps


def matmul_rate(hidden: list[int], repeats: int, lib: str = "numpy") -> float:
    """float32 FLOP/s of `lib`'s matmul ("numpy" or "torch") on the epoch's own shapes (forward,
    dW, dX), best of `repeats` runs."""
    rng = np.random.default_rng(0)
    if lib == "torch":
        import torch

        def conv(a):
            return torch.from_numpy(a)
    else:
        def conv(a):
            return a
    sizes = [N_IN, *hidden, N_CLASSES]
    ops = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        x = conv(rng.normal(size=(BATCH, a)).astype(np.float32))
        w = conv(rng.normal(size=(b, a)).astype(np.float32))
        dy = conv(rng.normal(size=(BATCH, b)).astype(np.float32))
        ops.append((lambda x=x, w=w: x @ w.T, 2 * BATCH * a * b))
        ops.append((lambda x=x, dy=dy: dy.T @ x, 2 * BATCH * a * b))
        if i > 0:
            ops.append((lambda w=w, dy=dy: dy @ w, 2 * BATCH * a * b))
    flops = sum(f for _, f in ops)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(50):
            for op, _ in ops:
                op()
        best = min(best, (time.perf_counter() - t) / 50)
    return flops / best


# --------------------------------------------------------------------------------------------
# The variants. Each starts from the same weights (arrayml's MLP initialisation, seed 0), takes
# the same batches, and exposes its parameters, so that they can be checked to agree.
# --------------------------------------------------------------------------------------------


class Variant:
    """``epoch(seed, steps=None)`` runs one epoch, or its first `steps` steps (and waits for the
    device); ``params()`` returns the weights and biases as host arrays [W1, b1, W2, b2, ...]
    with b of shape (out,)."""

    def __init__(self, epoch: Callable[..., None], params: Callable[[], list[np.ndarray]]) -> None:
        self.epoch, self.params = epoch, params


def initial_weights(hidden: list[int]) -> list[np.ndarray]:
    model = am.MLP(N_IN, hidden, N_CLASSES, rng=0)
    return [np.reshape(np.asarray(v), (-1,)) if k.endswith("bias") else np.asarray(v) for k, v in model.parameters().items()]


def arrayml_variant(xp_name: str, device: str | None, hidden: list[int], x_host, y_host) -> Variant:
    where = backend.placement(xp_name, device, "float32")
    x = backend.convert(x_host, where.xp, where.device, where.dtype)
    y = backend.convert(y_host, where.xp, where.device, where.xp.int64)
    model = am.MLP(N_IN, hidden, N_CLASSES, rng=0, xp=where.xp, device=where.device, dtype=where.dtype)
    learner = ArraymlLearner(model, am.SGD(LR))

    def epoch(seed: int, steps: int | None = None) -> None:
        loss = None
        for step, (xb, yb) in enumerate(train_batches(x, y, BATCH, seed=seed, epoch=0)):
            if step == steps:
                break
            loss, _ = learner.train_step(xb, yb, LR)
        backend.synchronize(where.xp, where.device)
        assert np.isfinite(float(loss))

    def params() -> list[np.ndarray]:
        return [np.reshape(backend.to_numpy(v), (-1,)) if k.endswith("bias") else backend.to_numpy(v)
                for k, v in model.parameters().items()]

    return Variant(epoch, params)


def torch_variant(device: str, hidden: list[int], x_host, y_host) -> Variant:
    import torch
    from torch import nn

    from arrayml_app.torch_mirror import torch_mirror

    x = torch.from_numpy(x_host).to(device)
    y = torch.from_numpy(y_host).to(device)
    net = torch_mirror(am.MLP(N_IN, hidden, N_CLASSES, rng=0), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()

    def epoch(seed: int, steps: int | None = None) -> None:
        order = torch.from_numpy(np.random.default_rng([seed, 0]).permutation(len(y_host))).to(device)
        loss = None
        stop = len(y_host) - BATCH + 1 if steps is None else steps * BATCH
        for start in range(0, stop, BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        assert torch.isfinite(loss)

    return Variant(epoch, lambda: [p.detach().cpu().numpy() for p in net.parameters()])


def numpy_loop_variant(hidden: list[int], x, y) -> Variant:
    """The plain way: explicit matmuls, ReLU masks, softmax + cross-entropy gradient, in-place SGD."""
    init = initial_weights(hidden)
    Ws = [w.copy() for w in init[0::2]]
    bs = [b.copy() for b in init[1::2]]
    eye = np.eye(N_CLASSES, dtype=np.float32)

    def epoch(seed: int, steps: int | None = None) -> None:
        order = np.random.default_rng([seed, 0]).permutation(len(y))
        stop = len(y) - BATCH + 1 if steps is None else steps * BATCH
        for start in range(0, stop, BATCH):
            idx = order[start:start + BATCH]
            h, acts = x[idx], []
            for i, (W, b) in enumerate(zip(Ws, bs)):
                acts.append(h)
                h = h @ W.T + b
                if i < len(Ws) - 1:
                    h = np.maximum(h, 0)
            z = h - h.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            d = (p - eye[y[idx]]) / BATCH
            for i in range(len(Ws) - 1, -1, -1):
                dW, db = d.T @ acts[i], d.sum(axis=0)
                if i > 0:
                    d = (d @ Ws[i]) * (acts[i] > 0)
                Ws[i] -= LR * dW
                bs[i] -= LR * db

    return Variant(epoch, lambda: [a for pair in zip(Ws, bs) for a in pair])


def relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """‖a − b‖ / ‖b‖ over all parameters together (a tiny bias vector alone would magnify the
    effect of one ReLU unit flipping sign under float32 rounding)."""
    num = sum(float(np.sum((u - v) ** 2)) for u, v in zip(a, b))
    den = sum(float(np.sum(v ** 2)) for v in b)
    return float(np.sqrt(num / max(den, 1e-300)))


def available_backends(include_gpu: bool) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = [("numpy", None)]
    try:
        import torch

        out.append(("torch", "cpu"))
        if include_gpu and torch.cuda.is_available():
            out.append(("torch", "cuda"))
    except ImportError:
        pass
    if include_gpu:
        try:
            backend.namespace_by_name("cupy")
            out.append(("cupy", "cuda"))
        except (backend.BackendUnavailableError, ValueError):
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="measured epochs per variant (median reported)")
    p.add_argument("--hidden", default="128;512,256,128", help="networks, ';'-separated hidden sizes")
    p.add_argument("--gpu", action="store_true", help="also torch CUDA and cupy when present")
    p.add_argument("--json", default=None, help="write the numbers to this JSON file (default: none written)")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN, N_IN)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=N_TRAIN).astype(np.int64)
    n_steps = N_TRAIN // BATCH
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "settings": {"samples": N_TRAIN, "batch": BATCH, "dtype": "float32", "steps": n_steps, "repeats": args.repeats},
        "networks": [],
    }
    try:
        import torch

        report["machine"]["torch"] = torch.__version__
        report["machine"]["torch_threads"] = torch.get_num_threads()
    except ImportError:
        torch = None
    report["machine"]["numpy"] = np.__version__

    for spec in args.hidden.split(";"):
        hidden = [int(h) for h in spec.split(",")]
        flops = epoch_flops(hidden, n_steps)
        rates = {"numpy": matmul_rate(hidden, repeats=5)}
        if torch is not None:
            rates["torch"] = matmul_rate(hidden, repeats=5, lib="torch")
        peak = max(rates.values())  # the machine's float32 matmul rate: the best library's
        variants: dict[str, Variant] = {}
        for xp_name, dev in available_backends(args.gpu):
            label = f"arrayml/{xp_name}" + (f" ({dev})" if dev else "")
            variants[label] = arrayml_variant(xp_name, dev, hidden, x, y)
        if torch is not None:
            variants["torch.nn (cpu)"] = torch_variant("cpu", hidden, x, y)
            if args.gpu and torch.cuda.is_available():
                variants["torch.nn (cuda)"] = torch_variant("cuda", hidden, x, y)
        variants["numpy loop"] = numpy_loop_variant(hidden, x, y)
        # the same 10 steps from the same weights must leave every variant with the same weights
        # (float32 rounding apart; over a whole epoch rounding differences grow chaotically)
        for v in variants.values():
            v.epoch(0, steps=10)
        ref_params = variants["arrayml/numpy"].params()
        agreement = {name: relative_difference(v.params(), ref_params) for name, v in variants.items()}
        worst = max(agreement.values())
        if worst > 1e-4:
            raise SystemExit(f"variants disagree after 10 steps: relative parameter differences {agreement}")
        for v in variants.values():  # warm-up epoch
            v.epoch(0)
        # interleave the variants' repetitions, so that a slow spell of the machine hits all alike
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.repeats):
            for name, v in variants.items():
                t = time.perf_counter()
                v.epoch(r + 1)
                times[name].append(time.perf_counter() - t)
        ref = statistics.median(times["torch.nn (cpu)"]) if "torch.nn (cpu)" in times else None
        rows = []
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({
                "variant": name, "median_seconds": med, "all_seconds": ts,
                "ratio_to_torch_cpu": None if ref is None else med / ref,
                "fraction_of_matmul_rate": flops / med / peak,
            })
        report["networks"].append({"hidden": hidden, "epoch_gflop": flops / 1e9, "matmul_gflops": peak / 1e9,
                                   "relative_parameter_difference_after_10_steps": agreement,
                                   "matmul_gflops_by_library": {k: v / 1e9 for k, v in rates.items()}, "rows": rows})
        print(f"\nMLP 3072-{'-'.join(map(str, hidden))}-10, {n_steps} steps of {BATCH}, float32: {flops / 1e9:.1f} GFLOP/epoch; "
              f"float32 matmul rate on these shapes " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in rates.items()) + " GFLOP/s")
        print(f"{'variant':<22}{'epoch s (median)':>18}{'vs torch.nn cpu':>17}{'of matmul rate':>16}")
        for row in rows:
            ratio = "" if row["ratio_to_torch_cpu"] is None else f"{row['ratio_to_torch_cpu']:.3f}x"
            print(f"{row['variant']:<22}{row['median_seconds']:>18.3f}{ratio:>17}{row['fraction_of_matmul_rate']:>15.0%}")
        print(f"after the same 10 steps all variants hold the same weights to a relative {worst:.1e}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
