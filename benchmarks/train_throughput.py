#!/usr/bin/env python
"""One training epoch of the assignment's MLP, measured side by side in one process.

    python benchmarks/train_throughput.py                      # 3072-128-10 and 3072-512-256-128-10
    python benchmarks/train_throughput.py --repeats 9 --json results/bench/train_throughput.json
    python benchmarks/train_throughput.py --variants "arrayml/numpy,numpy loop"   # a subset

Variants (same data, same batches, batch 128, float32, 45000 samples, last partial batch dropped):
  arrayml/<backend>            arrayml's MLP + SoftmaxCrossEntropy + SGD (ArraymlLearner.train_step,
                               which also counts the correct predictions) on numpy, torch, jax
  arrayml/<backend> compiled   the same step compiled as one function (ArraymlLearner(compile=True):
                               torch.compile on torch, jax.jit with donated buffers on jax)
  torch.nn                     the same network in plain PyTorch: torch.nn + autograd + torch.optim.SGD
  numpy loop                   a plain hand-written NumPy loop (the assignment's style, in-place updates)
  ... adam                     the same variant with Adam (lr 1e-3) instead of SGD: arrayml's on NumPy,
                               PyTorch, compiled PyTorch and JAX, and torch.optim.Adam; its "vs SGD" column is
                               its epoch over the same variant's SGD epoch of the same round
and the machine's float32 matrix-multiply rate on the network's own matmul shapes (NumPy, PyTorch
and JAX: the best is "the machine's"), so that the effective fraction of it is printed.

How it measures: a warm-up epoch, then --repeats rounds; each round runs one epoch of every
variant in turn (A B C D, A B C D, ...), so that a slow spell of the shared machine hits every
variant alike, with a pause (--settle, 0.25 s) before each epoch, because an idle OpenBLAS
worker keeps spinning on a core for about 0.1 s after its last product and would slow whichever
variant comes next. Times are medians over the rounds; each ratio is taken round by round (a
variant's epoch over the reference's epoch of the same round) and printed as its median with its
spread (min-max). A compiled variant's first call (tracing and compiling) is its own column,
not part of any epoch. The BLAS libraries and thread counts are printed (threadpoolctl, from the
`bench` extra). Ratios within one run are what to compare; no absolute time means anything across
machines.

The data are random (the timing does not depend on the pixels), so no data set is needed.
Every variant starts from the same weights, and after the same first step all must hold the same
weights as the others with the same optimizer (relative 1e-4; float32 rounding apart), after 10
steps too with SGD, and within ADAM_DRIFT with Adam (which magnifies rounding differences), or
the script stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import arrayml as am
from arrayml import backend
from arrayml.data import train_batches
from arrayml.training import ArraymlLearner

N_TRAIN, N_IN, N_CLASSES, BATCH, LR = 45000, 3072, 10, 128, 0.01
ADAM_LR = 1e-3
#: how far apart (relative) Adam variants may drift in 10 steps by rounding alone (see main)
ADAM_DRIFT = 5e-2
#: The suffix of an Adam variant's label.
ADAM = " adam"
#: The variant every other is compared with, and the one each library's own variant is compared with.
TORCH_REF, NUMPY_REF = "torch.nn (cpu)", "numpy loop"


def epoch_flops(hidden: list[int], n_steps: int) -> float:
    """Matmul FLOPs an epoch needs: forward, weight gradients, and input gradients of every layer
    but the first (which no implementation here computes)."""
    sizes = [N_IN, *hidden, N_CLASSES]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    first = sizes[0] * sizes[1]
    return 2.0 * BATCH * (3 * macs - first) * n_steps


def matmul_rate(hidden: list[int], repeats: int, lib: str = "numpy") -> float:
    """float32 FLOP/s of `lib`'s matmul ("numpy", "torch" or "jax") on the epoch's own shapes
    (forward, dW, dX), best of `repeats` runs. JAX's products run as one jitted function (its
    eager calls would measure dispatch, not the matmul)."""
    rng = np.random.default_rng(0)
    sizes = [N_IN, *hidden, N_CLASSES]
    shapes = list(zip(sizes[:-1], sizes[1:]))
    flops = sum(2 * BATCH * a * b * (2 if i == 0 else 3) for i, (a, b) in enumerate(shapes))
    mats = [tuple(rng.normal(size=s).astype(np.float32) for s in ((BATCH, a), (b, a), (BATCH, b))) for a, b in shapes]

    def products(mats):
        out = []
        for i, (x, w, dy) in enumerate(mats):
            out += [x @ w.T, dy.T @ x] + ([dy @ w] if i > 0 else [])
        return out

    if lib == "torch":
        import torch

        mats = [tuple(torch.from_numpy(a) for a in m) for m in mats]
        run = products
    elif lib == "jax":
        import jax
        import jax.numpy as jnp

        mats = [tuple(jnp.asarray(a) for a in m) for m in mats]
        compiled = jax.jit(products)

        def run(mats):
            return jax.block_until_ready(compiled(mats))

        run(mats)  # compile outside the timing
    else:
        run = products
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(50):
            run(mats)
        best = min(best, (time.perf_counter() - t) / 50)
    return flops / best


def library_info() -> dict[str, object]:
    """The libraries and threads the variants run with: NumPy's BLAS (threadpoolctl) and Adam
    kernel, PyTorch's BLAS and intra-op threads, JAX's version and devices."""
    info: dict[str, object] = {"numpy": np.__version__, "numpy_adam": numpy_adam_kernel()}
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                          "architecture", "threading_layer", "prefix")}
                               for pool in threadpool_info()]
    except ImportError:
        info["threadpools"] = 'unknown: pip install -e ".[bench]" (threadpoolctl)'
    try:
        import torch

        config = torch.__config__.show()
        blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "?")
        info["torch"] = {"version": torch.__version__, "blas": blas, "threads": torch.get_num_threads()}
    except ImportError:
        pass
    try:
        import jax

        info["jax"] = {"version": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    except ImportError:
        pass
    return info


def numpy_adam_kernel() -> str:
    """Which kernel arrayml's NumPy Adam update runs here (`arrayml.backend._numpy.compiled_adam`)."""
    from arrayml.backend import _numpy

    if _numpy.compiled_adam() is not None:
        import numba

        return f"numba {numba.__version__}, one compiled loop"
    why = "ARRAYML_NUMBA=0" if os.environ.get("ARRAYML_NUMBA") == "0" else "numba not installed"
    return f"NumPy ufuncs in blocks ({why})"


def describe_libraries(info: dict[str, object]) -> str:
    pools = info.get("threadpools")
    if isinstance(pools, list):
        blas = "; ".join(
            f"{p['internal_api']} {p['version'] or ''} ({p['user_api']}, {p['prefix']}"
            + (f", {p['architecture']}" if p.get("architecture") else "") + f"): {p['num_threads']} threads"
            for p in pools
        )
    else:
        blas = str(pools)
    lines = [f"numpy {info['numpy']}; threadpools: {blas}", f"numpy's Adam update: {info['numpy_adam']}"]
    if "torch" in info:
        t = info["torch"]
        lines.append(f"torch {t['version']}: BLAS {t['blas']}, {t['threads']} intra-op threads")
    if "jax" in info:
        lines.append(f"jax {info['jax']['version']} on {', '.join(info['jax']['devices'])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The variants. Each starts from the same weights (arrayml's MLP initialisation, seed 0), takes
# the same batches, and exposes its parameters, so that they can be checked to agree.
# --------------------------------------------------------------------------------------------


class Variant:
    """``epoch(seed, steps=None)`` runs one epoch, or its first `steps` steps (and waits for the
    device); ``params()`` returns the weights and biases as host arrays [W1, b1, W2, b2, ...]
    with b of shape (out,). ``library`` names whose matmul rate it runs on; ``first_call`` is
    the seconds of its very first step (a compiled variant's tracing and compiling), once run."""

    def __init__(self, epoch: Callable[..., None], params: Callable[[], list[np.ndarray]], library: str) -> None:
        self.epoch, self.params, self.library = epoch, params, library
        self.first_call: float | None = None


def initial_weights(hidden: list[int]) -> list[np.ndarray]:
    model = am.MLP(N_IN, hidden, N_CLASSES, rng=0)
    return [np.reshape(np.asarray(v), (-1,)) if k.endswith("bias") else np.asarray(v) for k, v in model.parameters().items()]


def arrayml_variant(xp_name: str, device: str | None, hidden: list[int], x_host, y_host, *, compile: bool = False,
                    optimizer: str = "sgd") -> Variant:
    where = backend.placement(xp_name, device, "float32")
    model = am.MLP(N_IN, hidden, N_CLASSES, rng=0, xp=where.xp, device=where.device, dtype=where.dtype)
    opt, rate = (am.Adam(ADAM_LR), ADAM_LR) if optimizer == "adam" else (am.SGD(LR), LR)
    return learner_variant(ArraymlLearner(model, opt, compile=compile), x_host, y_host, rate)


def learner_variant(learner: ArraymlLearner, x_host, y_host, rate: float, *, batch: int | None = None) -> Variant:
    """An epoch of `learner`'s steps (`ArraymlLearner.train_step`, eager or compiled) at `rate` on
    the batches of (x_host, y_host) moved where its model lives, in `train_batches`' order; its
    first step timed on its own (a compiled step's tracing and compiling)."""
    where = learner.model.placement()
    batch = BATCH if batch is None else batch
    x = backend.convert(x_host, where.xp, where.device, where.dtype)
    y = backend.convert(y_host, where.xp, where.device, backend.widest_int(where.xp))

    def epoch(seed: int, steps: int | None = None) -> None:
        loss = None
        for step, (xb, yb) in enumerate(train_batches(x, y, batch, seed=seed, epoch=0)):
            if step == steps:
                break
            if variant.first_call is None:
                t = time.perf_counter()
                with warnings.catch_warnings():  # torch.compile's notes on tracing array-api-compat
                    warnings.simplefilter("ignore")
                    loss, _ = learner.train_step(xb, yb, rate)
                backend.synchronize(where.xp, where.device, loss)
                variant.first_call = time.perf_counter() - t
                continue
            loss, _ = learner.train_step(xb, yb, rate)
        backend.synchronize(where.xp, where.device, loss)
        assert np.isfinite(float(loss))

    def params() -> list[np.ndarray]:
        return [np.reshape(backend.to_numpy(v), (-1,)) if k.endswith("bias") else backend.to_numpy(v)
                for k, v in learner.model.parameters().items()]

    variant = Variant(epoch, params, library=backend.namespace_name(where.xp))
    return variant


def torch_variant(device: str, hidden: list[int], x_host, y_host, *, optimizer: str = "sgd") -> Variant:
    import torch

    from arrayml_app.torch_mirror import torch_mirror

    net = torch_mirror(am.MLP(N_IN, hidden, N_CLASSES, rng=0), device=device)
    opt = torch.optim.Adam(net.parameters(), lr=ADAM_LR) if optimizer == "adam" else torch.optim.SGD(net.parameters(), lr=LR)
    return torch_loop_variant(net, opt, x_host, y_host, device)


def torch_loop_variant(net, opt, x_host, y_host, device: str, *, batch: int | None = None) -> Variant:
    """An epoch of plain PyTorch: `net` (a torch.nn module), autograd and the torch optimizer `opt`,
    on the same batches as `learner_variant` (the permutation of ``[seed, 0]``)."""
    import torch
    from torch import nn

    batch = BATCH if batch is None else batch
    x = torch.from_numpy(x_host).to(device)
    y = torch.from_numpy(y_host).to(device)
    loss_fn = nn.CrossEntropyLoss()

    def epoch(seed: int, steps: int | None = None) -> None:
        order = torch.from_numpy(np.random.default_rng([seed, 0]).permutation(len(y_host))).to(device)
        loss = None
        stop = len(y_host) - batch + 1 if steps is None else steps * batch
        for start in range(0, stop, batch):
            idx = order[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        assert torch.isfinite(loss)

    return Variant(epoch, lambda: [p.detach().cpu().numpy() for p in net.parameters()], library="torch")


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

    return Variant(epoch, lambda: [a for pair in zip(Ws, bs) for a in pair], library="numpy")


def relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """‖a − b‖ / ‖b‖ over all parameters together (a tiny bias vector alone would magnify the
    effect of one ReLU unit flipping sign under float32 rounding)."""
    num = sum(float(np.sum((u - v) ** 2)) for u, v in zip(a, b))
    den = sum(float(np.sum(v ** 2)) for v in b)
    return float(np.sqrt(num / max(den, 1e-300)))


def available_variants(include_gpu: bool) -> list[tuple[str, str, str | None, bool]]:
    """``(label, kind, device, compiled)`` of every variant this machine can run, in the order
    they run each round; kind is a backend name, "torch.nn" or "numpy loop"."""
    out: list[tuple[str, str, str | None, bool]] = [("arrayml/numpy", "numpy", None, False)]
    devices: list[str] = []
    try:
        import torch

        devices = ["cpu"] + (["cuda"] if include_gpu and torch.cuda.is_available() else [])
    except ImportError:
        pass
    for dev in devices:
        out.append((f"arrayml/torch ({dev})", "torch", dev, False))
        out.append((f"arrayml/torch ({dev}) compiled", "torch", dev, True))
    try:
        backend.namespace_by_name("jax")
        jax_devices = ["cpu"] + (["cuda"] if include_gpu else [])
        for dev in jax_devices:
            try:
                backend.resolve_device(backend.namespace_by_name("jax"), dev)
            except backend.BackendUnavailableError:
                continue
            out.append((f"arrayml/jax ({dev})", "jax", dev, False))
            out.append((f"arrayml/jax ({dev}) compiled", "jax", dev, True))
    except backend.BackendUnavailableError:
        pass
    if include_gpu:
        try:
            backend.namespace_by_name("cupy")
            out.append(("arrayml/cupy (cuda)", "cupy", "cuda", False))
        except (backend.BackendUnavailableError, ValueError):
            pass
    for dev in devices:
        out.append((f"torch.nn ({dev})", "torch.nn", dev, False))
    out.append((NUMPY_REF, "numpy loop", None, False))
    # Adam beside SGD: arrayml's eager NumPy and PyTorch steps, compiled PyTorch and JAX, torch.optim's
    sgd = {label for label, *_ in out}
    for label in ("arrayml/numpy", "arrayml/torch (cpu)", "arrayml/torch (cpu) compiled", "arrayml/jax (cpu) compiled",
                  "torch.nn (cpu)"):
        if label in sgd:
            kind, dev, compiled = next(row[1:] for row in out if row[0] == label)
            out.append((label + ADAM, kind, dev, compiled))
    return out


def build_variant(kind: str, device: str | None, compiled: bool, hidden: list[int], x, y, *, optimizer: str = "sgd") -> Variant:
    if kind == "torch.nn":
        return torch_variant(device or "cpu", hidden, x, y, optimizer=optimizer)
    if kind == "numpy loop":
        return numpy_loop_variant(hidden, x, y)
    return arrayml_variant(kind, device, hidden, x, y, compile=compiled, optimizer=optimizer)


def optimizer_of(label: str) -> str:
    return "adam" if label.endswith(ADAM) else "sgd"


def agreement(variants: dict[str, Variant]) -> dict[str, float]:
    """Each variant's relative parameter difference from the reference of its optimizer
    (arrayml on NumPy with that optimizer, else the group's first)."""
    found = {}
    for opt in ("sgd", "adam"):
        group = [name for name in variants if optimizer_of(name) == opt]
        if group:
            reference = "arrayml/numpy" + (ADAM if opt == "adam" else "")
            ref_params = variants[reference if reference in group else group[0]].params()
            found.update({name: relative_difference(variants[name].params(), ref_params) for name in group})
    return found


def time_epochs(variants: dict[str, Variant], repeats: int, settle: float) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Each variant's epoch times and minor page faults over `repeats` rounds. The variants'
    repetitions are interleaved (A B C D, A B C D, ...), so that a slow spell of the machine hits
    all alike, with a pause of `settle` seconds before each epoch, so that the last variant's idle
    worker threads (OpenBLAS spins ~0.1 s) have stopped."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    faults: dict[str, list[int]] = {k: [] for k in variants}
    for r in range(repeats):
        for name, v in variants.items():
            time.sleep(settle)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t = time.perf_counter()
            v.epoch(r + 1)
            times[name].append(time.perf_counter() - t)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return times, faults


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratio_text(r: dict[str, float] | None) -> str:
    return "" if r is None else f"{r['median']:.3f}x ({r['min']:.2f}-{r['max']:.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="measured rounds: epochs per variant (median reported)")
    p.add_argument("--hidden", default="128;512,256,128", help="networks, ';'-separated hidden sizes")
    p.add_argument("--variants", default=None, help="only these variants, ','-separated labels (default: all available)")
    p.add_argument("--settle", type=float, default=0.25, help="seconds of pause before each timed epoch")
    p.add_argument("--gpu", action="store_true", help="also torch CUDA, JAX GPU and cupy when present")
    p.add_argument("--json", default=None, help="write the numbers to this JSON file (default: none written)")
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN, N_IN)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=N_TRAIN).astype(np.int64)
    n_steps = N_TRAIN // BATCH
    plan = available_variants(args.gpu)
    if args.variants is not None:
        wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = sorted(set(wanted) - {label for label, *_ in plan})
        if unknown:
            p.error(f"unknown or unavailable variants {unknown}; available: {[label for label, *_ in plan]}")
        plan = [row for row in plan if row[0] in wanted]
    libs = library_info()
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/train_throughput.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"platform": platform.platform(), "processor": _processor(), "cpus": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()[0]},
        "libraries": libs,
        "settings": {"samples": N_TRAIN, "batch": BATCH, "dtype": "float32", "steps": n_steps, "repeats": args.repeats,
                     "settle_seconds": args.settle},
        "networks": [],
    }
    print(f"{report['machine']['processor']}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(describe_libraries(libs))

    for spec in args.hidden.split(";"):
        hidden = [int(h) for h in spec.split(",")]
        flops = epoch_flops(hidden, n_steps)
        kinds = {kind for _, kind, _, _ in plan}
        rates = {"numpy": matmul_rate(hidden, repeats=5)}
        for lib, used_by in (("torch", {"torch", "torch.nn"}), ("jax", {"jax"})):
            if kinds & used_by:
                rates[lib] = matmul_rate(hidden, repeats=5, lib=lib)
        peak = max(rates.values())  # the machine's float32 matmul rate: the best library's
        variants = {label: build_variant(kind, dev, compiled, hidden, x, y, optimizer=optimizer_of(label))
                    for label, kind, dev, compiled in plan}
        # the same steps from the same weights must leave every variant with the same weights as
        # the others with its optimizer, float32 rounding apart (these are also every variant's
        # first calls, where the compiled ones compile). After 1 step every variant must agree
        # to 1e-4; after 10, the SGD variants still must, but Adam divides each gradient entry
        # by its own running root mean square, so a rounding difference in an entry whose
        # gradient is near 0 becomes a step of up to lr: on the deep net a 1e-7 relative change
        # of the inputs moves NumPy's own Adam weights 1e-3 apart in 10 steps (SGD: 2e-8), and
        # variants that round differently (JAX, MKL) end ~1e-2 apart. Adam is held to 1e-4 after
        # 1 step and to ADAM_DRIFT after 10 (a wrong formula is off by far more).
        for v in variants.values():
            v.epoch(0, steps=1)
        after_one = agreement(variants)
        if max(after_one.values()) > 1e-4:
            raise SystemExit(f"variants disagree after 1 step: relative parameter differences {after_one}")
        for v in variants.values():
            v.epoch(1, steps=9)
        after_ten = agreement(variants)
        worst = {opt: max((d for name, d in after_ten.items() if optimizer_of(name) == opt), default=0.0)
                 for opt in ("sgd", "adam")}
        if worst["sgd"] > 1e-4 or worst["adam"] > ADAM_DRIFT:
            raise SystemExit(f"variants disagree after 10 steps: relative parameter differences {after_ten}")
        for v in variants.values():  # warm-up epoch
            v.epoch(0)
        times, faults = time_epochs(variants, args.repeats, args.settle)
        rows = []
        for name, ts in times.items():
            v = variants[name]
            row = {
                "variant": name, "median_seconds": statistics.median(ts), "min_seconds": min(ts), "max_seconds": max(ts),
                "all_seconds": ts, "first_call_seconds": v.first_call,
                "page_faults_per_step": statistics.median(faults[name]) / n_steps,
                "fraction_of_matmul_rate": flops / statistics.median(ts) / peak,
                "fraction_of_own_library_matmul_rate": flops / statistics.median(ts) / rates[v.library] if v.library in rates else None,
            }
            for key, ref in (("ratio_to_torch_nn", TORCH_REF), ("ratio_to_numpy_loop", NUMPY_REF)):
                row[key] = spread([a / b for a, b in zip(ts, times[ref])]) if ref in times else None
            twin = name[: -len(ADAM)] if name.endswith(ADAM) else None  # an Adam row against its SGD row
            row["ratio_to_sgd"] = spread([a / b for a, b in zip(ts, times[twin])]) if twin in times else None
            rows.append(row)
        report["networks"].append({"hidden": hidden, "epoch_gflop": flops / 1e9, "matmul_gflops": peak / 1e9,
                                   "relative_parameter_difference_after_1_step": after_one,
                                   "relative_parameter_difference_after_10_steps": after_ten,
                                   "matmul_gflops_by_library": {k: v / 1e9 for k, v in rates.items()}, "rows": rows})
        print(f"\nMLP 3072-{'-'.join(map(str, hidden))}-10, {n_steps} steps of {BATCH}, float32: {flops / 1e9:.1f} GFLOP/epoch; "
              f"float32 matmul rate on these shapes " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in rates.items()) + " GFLOP/s")
        print(f"{'variant':<35}{'epoch s: median (min-max)':>27}{'vs torch.nn: median (spread)':>30}"
              f"{'vs numpy loop':>24}{'adam vs sgd':>24}{'of matmul rate: best / own':>28}{'first call s':>14}"
              f"{'faults/step':>13}")
        for row in rows:
            own = row["fraction_of_own_library_matmul_rate"]
            first = "" if row["first_call_seconds"] is None else f"{row['first_call_seconds']:.3f}"
            print(f"{row['variant']:<35}{row['median_seconds']:>10.3f} ({row['min_seconds']:.3f}-{row['max_seconds']:.3f})"
                  f"{_ratio_text(row['ratio_to_torch_nn']):>30}{_ratio_text(row['ratio_to_numpy_loop']):>24}"
                  f"{_ratio_text(row['ratio_to_sgd']):>24}"
                  f"{row['fraction_of_matmul_rate']:>17.0%} / {'' if own is None else f'{own:.0%}':<8}"
                  f"{first:>14}{row['page_faults_per_step']:>13.1f}")
        print(f"from the same weights, after the same steps every variant holds the weights of the others with its "
              f"optimizer, to a relative {max(after_one.values()):.1e} after 1 step; after 10: SGD {worst['sgd']:.1e}, "
              f"Adam {worst['adam']:.1e} (Adam magnifies rounding differences; see ADAM_DRIFT)")
    if args.json:
        write_report(report, args.json)
    return 0


def write_report(report: dict[str, object], path: str) -> None:
    """`report` as JSON at `path` (its folder made if missing), and a line saying so."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten to {out}")


def _processor() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
