#!/usr/bin/env python
"""Less loops, more speed: a Linear layer's forward and backward, vectorised vs looped.

    python benchmarks/matmul_vs_loop.py                    # NumPy
    python benchmarks/matmul_vs_loop.py --xp torch         # any backend: numpy, torch, cupy, array-api-strict
    python benchmarks/matmul_vs_loop.py --xp cupy          # on a GPU

For Y = X Wᵀ + b (X: S samples × M inputs, W: N outputs × M) and an upstream gradient dY, each
variant computes Y, dW = dYᵀX, db = Σ_s dY and dX = dY W:

  vectorised          four array operations for the whole batch (matrix products)
  loop over samples   one matrix-vector product per sample s, outer products summed for dW
  loop over s and n   one dot product per sample and output unit, the way it reads on paper

All three are written with the array API (so they run on every backend), are checked to give
the same numbers, and are timed (median of repeats) for a few sizes. Prints a table of times and
speedups (two significant digits), and writes JSON only to the file --json names. No absolute
time is asserted anywhere: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from arrayml import backend
from arrayml.backend import Array, Namespace

SIZES = [(16, 64, 32), (64, 256, 128), (128, 512, 256)]  # (S samples, M inputs, N outputs)


def vectorised(xp: Namespace, X: Array, W: Array, b: Array, dY: Array) -> tuple[Array, ...]:
    Y = X @ W.T + b
    dW = dY.T @ X
    db = xp.sum(dY, axis=0, keepdims=True)
    dX = dY @ W
    return Y, dW, db, dX


def loop_samples(xp: Namespace, X: Array, W: Array, b: Array, dY: Array) -> tuple[Array, ...]:
    S = X.shape[0]
    rows_y, rows_dx = [], []
    dW = xp.zeros(W.shape, dtype=W.dtype, device=backend.device(W))
    db = xp.zeros(b.shape, dtype=b.dtype, device=backend.device(b))
    for s in range(S):
        x_s, dy_s = X[s, :], dY[s, :]
        rows_y.append(W @ x_s + b[0, :])
        dW = dW + dy_s[:, None] * x_s[None, :]  # outer product
        db = db + dy_s[None, :]
        rows_dx.append(dy_s @ W)
    return xp.stack(rows_y), dW, db, xp.stack(rows_dx)


def loop_samples_and_units(xp: Namespace, X: Array, W: Array, b: Array, dY: Array) -> tuple[Array, ...]:
    S, N = X.shape[0], W.shape[0]
    rows_y, rows_dx = [], []
    dW_rows = [xp.zeros((W.shape[1],), dtype=W.dtype, device=backend.device(W)) for _ in range(N)]
    db = [xp.zeros((), dtype=b.dtype, device=backend.device(b)) for _ in range(N)]
    for s in range(S):
        x_s = X[s, :]
        y_s = []
        dx_s = xp.zeros(x_s.shape, dtype=X.dtype, device=backend.device(X))
        for n in range(N):
            w_n, g = W[n, :], dY[s, n]
            y_s.append(xp.vecdot(w_n, x_s) + b[0, n])
            dW_rows[n] = dW_rows[n] + g * x_s
            db[n] = db[n] + g
            dx_s = dx_s + g * w_n
        rows_y.append(xp.stack(y_s))
        rows_dx.append(dx_s)
    return xp.stack(rows_y), xp.stack(dW_rows), xp.reshape(xp.stack(db), (1, N)), xp.stack(rows_dx)


VARIANTS: dict[str, Callable[..., tuple[Array, ...]]] = {
    "vectorised": vectorised,
    "loop over samples": loop_samples,
    "loop over s and n": loop_samples_and_units,
}


def ratio(r: float) -> str:
    """`r` to two significant digits, never as an exponent: 0.40, 0.85, 1.2, 14, 196."""
    digits = max(1 - math.floor(math.log10(abs(r))), 0) if r and math.isfinite(r) else 0
    return f"{r:.{digits}f}"


def timed(f: Callable[[], tuple[Array, ...]], xp: Namespace, dev: object, budget: float) -> tuple[float, tuple[Array, ...]]:
    """Median time of repeated calls (at least 3, more while under `budget` seconds)."""
    out = f()
    backend.synchronize(xp, dev)
    times: list[float] = []
    while len(times) < 3 or (sum(times) < budget and len(times) < 200):
        t = time.perf_counter()
        out = f()
        backend.synchronize(xp, dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--xp", default="numpy", choices=backend.BACKEND_NAMES)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--budget", type=float, default=0.5, help="seconds of repeats per measurement")
    p.add_argument("--json", default=None, help="write the measurements to this JSON file (default: none written)")
    args = p.parse_args(argv)
    try:
        where = backend.placement(args.xp, args.device, args.dtype)
    except (ValueError, backend.BackendUnavailableError) as exc:
        print(f"matmul_vs_loop.py: error: {exc}", file=sys.stderr)
        return 2
    xp, dev = where.xp, where.device
    rtol = 1e-4 if args.dtype == "float32" else 1e-10
    rng = np.random.default_rng(0)
    rows = []
    print(f"Linear forward + backward on {where}; median times")
    print(f"{'S x M -> N':<18}" + "".join(f"{name:>20}" for name in VARIANTS) + f"{'speedup vs s-loop':>19}{'vs s,n-loop':>13}")
    for S, M, N in SIZES:
        arrays = [rng.normal(size=shape) for shape in ((S, M), (N, M), (1, N), (S, N))]
        X, W, b, dY = (backend.asarray(a, xp=xp, device=dev, dtype=where.dtype) for a in arrays)
        times, outputs = {}, {}
        for name, fn in VARIANTS.items():
            times[name], outputs[name] = timed(lambda fn=fn, X=X, W=W, b=b, dY=dY: fn(xp, X, W, b, dY), xp, dev, args.budget)
        reference = [backend.to_numpy(o) for o in outputs["vectorised"]]
        for name, outs in outputs.items():
            for label, got, ref in zip(("Y", "dW", "db", "dX"), outs, reference):
                np.testing.assert_allclose(backend.to_numpy(got), ref, rtol=rtol, atol=rtol, err_msg=f"{name}: {label}")
        speedups = {name: times[name] / times["vectorised"] for name in VARIANTS}
        rows.append({"S": S, "M": M, "N": N, "seconds": times, "speedup_of_vectorised": speedups, "agree": True})
        cells = "".join(f"{times[name] * 1e3:>17.3f} ms" for name in VARIANTS)
        print(f"{f'{S} x {M} -> {N}':<18}{cells}{ratio(speedups['loop over samples']):>18}x{ratio(speedups['loop over s and n']):>12}x")
    print(f"all three variants agree on Y, dW, db and dX (rtol {rtol:g})")
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.namespace_name(xp), "device": str(dev), "dtype": args.dtype,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "rows": rows,
    }
    if args.json:  # only where asked: the tracked results/bench/*.json are not overwritten by a try-out
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
