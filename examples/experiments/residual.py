#!/usr/bin/env python
"""Residual blocks: gradient norm at each depth.

    python examples/experiments/residual.py                # numpy, a few seconds
    python examples/experiments/residual.py --xp torch --activations relu

A stack of `depth` blocks, each ``Linear(W, W) → activation → Linear(W, W)``, is built twice from
the same seeded weights: plainly, ``Sequential(*blocks)``, and with every block wrapped in
``Residual(block)`` (``y = x + block(x)``). One forward and one backward pass at initialisation
on a batch of standard-normal inputs, with the loss ``L = mean_s(r · x_depth[s])`` (a random linear
readout ``r ~ N(0, 1/W)``, so that the gradient arriving at the top is the same for every
variant). The backward pass is run block by block, last block first, and records at each depth d:

* ``‖∂L/∂x_{d−1}‖``, the gradient with respect to the input of block d (what its backward returns);
* ``‖∂L/∂W‖`` of the first Linear in block d;
* the RMS of block d's output (the forward scale, which explains the backward one).

Two initialisations, each with plain and residual stacks, for each activation:

* ``kaiming``: arrayml's default N(0, 2/in) for both Linears of every block. A block then
  multiplies the mean square of a gradient passing through it by about 2 (the second Linear has no
  ReLU after it, so the two Linears' factors 2 meet only one ReLU's ½), and a residual block by
  about 1 + 2 = 3, so *both* stacks explode towards the input, the residual one faster
  (√3 vs √2 per block in norm for ReLU).
* ``scaled``: the same weights, with the second Linear of every block multiplied by
  ``1/√(2·depth)`` (the residual branch starts small). A residual block then multiplies the mean
  square by about 1 + 1/depth, bounded over the whole stack, while the plain stack, which has
  no skip path to carry the gradient, vanishes geometrically.

Writes results/residual/residual.json and residual_gradient_norms.png.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from arrayml import backend
from arrayml.backend import Array, Placement
from arrayml.modules import Linear, Module, Residual, Sequential, activation_by_name
from arrayml_app.experiments import Stopwatch, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, save_figure
from arrayml_app.report import Report

KINDS = ("plain", "residual")
INITS = ("kaiming", "scaled")


def build_model(
    kind: str, activation: str, *, width: int, depth: int, seed: int, where: Placement,
    branch_scale: float = 1.0,
) -> tuple[Sequential, Linear]:
    """The stack of `depth` blocks (plain or residual) and the readout Linear(width, 1).

    The same `seed` gives the same weights for every `kind` and `activation`; the second Linear
    of every block is multiplied by `branch_scale` (1 keeps arrayml's Kaiming N(0, 2/in)).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    put = {"xp": where.xp, "device": where.device, "dtype": where.dtype}
    blocks: list[Module] = []
    for _ in range(depth):
        first = Linear(width, width, rng=rng, **put)
        second = Linear(width, width, rng=rng, **put)
        if branch_scale != 1.0:
            # a new array; float() keeps a NumPy scalar from promoting float32 weights to float64
            second.params["weight"] = second.params["weight"] * float(branch_scale)
        block = Sequential(first, activation_by_name(activation), second)
        blocks.append(Residual(block) if kind == "residual" else block)
    readout = Linear(width, 1, input_layer=True, rng=rng, **put)  # r ~ N(0, 1/W)
    return Sequential(*blocks), readout


def draw_inputs(batch: int, width: int, *, seed: int, where: Placement) -> Array:
    """A (batch, width) standard-normal batch, from its own seeded generator."""
    rng = np.random.default_rng([seed, 1])
    return backend.normal(rng, (batch, width), std=1.0, xp=where.xp, device=where.device, dtype=where.dtype)


def first_linear(block: Module) -> Linear:
    """The first Linear of a block (inside its Residual wrapper, if any)."""
    inner = block.block if isinstance(block, Residual) else block
    return inner.layers[0]


def forward_and_top_gradient(model: Sequential, readout: Linear, x: Array) -> tuple[Array, Array, list[Array]]:
    """Forward through every block (keeping each block's output), the loss
    ``L = mean(readout(h))`` and the gradient ``∂L/∂h`` arriving at the top of the stack."""
    xp, dev = backend.get_namespace_and_device(x)
    outputs = []
    h = x
    for block in model.layers:
        h = block.forward(h)
        outputs.append(h)
    scores = readout.forward(h)
    loss = xp.mean(scores)
    dscores = xp.full(tuple(scores.shape), 1.0 / scores.shape[0], dtype=scores.dtype, device=dev)
    return loss, readout.backward(dscores), outputs


def backward_per_block(model: Sequential, dy: Array) -> list[Array]:
    """Sequential's backward loop, written out: the gradient with respect to the input of each
    block, listed from block 1 (the input side) to the last."""
    grads: list[Array] = [dy] * len(model.layers)
    for d in range(len(model.layers) - 1, -1, -1):
        dy = model.layers[d].backward(dy)
        grads[d] = dy
    return grads


def _norm(xp: Any, a: Array) -> Array:
    return xp.sqrt(xp.sum(a * a))


def measure(model: Sequential, readout: Linear, x: Array) -> dict:
    """Per-depth norms of one forward and backward pass, read back to the host once."""
    xp = backend.get_namespace(x)
    loss, dtop, outputs = forward_and_top_gradient(model, readout, x)
    input_grads = backward_per_block(model, dtop)
    size = float(x.shape[0] * x.shape[1])
    rows = xp.stack([
        xp.stack([_norm(xp, g) for g in input_grads]),
        xp.stack([_norm(xp, first_linear(b).grads["weight"]) for b in model.layers]),
        xp.stack([_norm(xp, h) / math.sqrt(size) for h in outputs]),
    ])
    host = np.asarray(backend.to_numpy(rows), dtype=np.float64)
    return {
        "loss": float(backend.to_numpy(loss)),
        "input_grad_norm": host[0].tolist(),
        "first_weight_grad_norm": host[1].tolist(),
        "output_rms": host[2].tolist(),
        "input_grad_ratio_first_to_last": float(host[0][0] / host[0][-1]),
        "input_grad_max_over_min": float(np.max(host[0]) / np.min(host[0])),
        "weight_grad_ratio_first_to_last": float(host[1][0] / host[1][-1]),
        "weight_grad_max_over_min": float(np.max(host[1]) / np.min(host[1])),
    }


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0], training=False)
    p.add_argument("--width", type=int, default=64, help="features of every Linear (default 64)")
    p.add_argument("--depth", type=int, default=20, help="number of blocks (default 20)")
    p.add_argument("--batch", type=int, default=256, help="input samples (default 256)")
    p.add_argument("--activations", nargs="+", default=["relu", "tanh"],
                   help="activations to compare; the first is the headline one (default relu tanh)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs (default 0)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = p.parse_args(argv)
    if args.depth < 2 or args.width < 1 or args.batch < 1:
        p.error("--depth must be at least 2, --width and --batch at least 1")
    out = out_dir(args, "residual")
    clock = Stopwatch()
    where = backend.placement(args.xp, args.device, args.dtype)
    scale = 1.0 / math.sqrt(2.0 * args.depth)
    x = draw_inputs(args.batch, args.width, seed=args.seed, where=where)
    curves = []
    for init in INITS:
        for activation in args.activations:
            for kind in KINDS:
                model, readout = build_model(
                    kind, activation, width=args.width, depth=args.depth, seed=args.seed, where=where,
                    branch_scale=1.0 if init == "kaiming" else scale,
                )
                curves.append({"init": init, "activation": activation, "kind": kind,
                               **measure(model, readout, x)})
    ratios = {init: {a: {c["kind"]: c["input_grad_ratio_first_to_last"] for c in curves
                         if c["init"] == init and c["activation"] == a} for a in args.activations}
              for init in INITS}
    n = args.depth - 1
    summary = {
        "experiment": "residual",
        "command": command_line("residual.py", argv),
        "settings": {
            "width": args.width, "depth": args.depth, "batch": args.batch,
            "activations": args.activations, "seed": args.seed, "dtype": args.dtype,
            "block": "Linear(W, W) -> activation -> Linear(W, W)",
            "loss": "mean over samples of a random linear readout r·x, r ~ N(0, 1/W)",
            "inits": {"kaiming": "arrayml default: every Linear N(0, 2/in), biases 0",
                      "scaled": f"kaiming, with each block's second Linear multiplied by 1/sqrt(2*depth) = {scale:.6g}"},
        },
        "backend": str(where),
        "ratio_definition": "||dL/d(input of block 1)|| / ||dL/d(input of block depth)||",
        "input_grad_ratio_first_to_last": ratios,
        "relu_mean_field_prediction": {
            "note": "predicted ratio = g ** ((depth - 1) / 2), g the factor by which a block multiplies "
                    "the mean square of the gradient: plain 2, residual 1 + 2 = 3 (kaiming); plain "
                    "1/depth, residual 1 + 1/depth (scaled)",
            "kaiming": {"plain": 2.0 ** (n / 2), "residual": 3.0 ** (n / 2)},
            "scaled": {"plain": (1.0 / args.depth) ** (n / 2), "residual": (1.0 + 1.0 / args.depth) ** (n / 2)},
        },
        "curves": curves,
    }
    plot(curves, args, out / "residual_gradient_norms.png")
    summary["seconds"] = clock.seconds()
    save_json(summary, out / "residual.json")
    print(f"{args.depth} blocks of width {args.width}, batch {args.batch}, {where}; "
          f"||grad at input of block 1|| / ||grad at input of block {args.depth}||:")
    print(f"{'init':<9}{'activation':<12}{'plain':>12}{'residual':>12}   (relu mean-field: plain, residual)")
    for init in INITS:
        for a in args.activations:
            pred = summary["relu_mean_field_prediction"][init]
            extra = f"   ({pred['plain']:.3g}, {pred['residual']:.3g})" if a == "relu" else ""
            print(f"{init:<9}{a:<12}{ratios[init][a]['plain']:>12.4g}{ratios[init][a]['residual']:>12.4g}{extra}")
    print(f"wrote {out / 'residual.json'} and residual_gradient_norms.png ({summary['seconds']:.1f}s)")
    return summary


def plot(curves: list[dict], args: Any, path: Path) -> None:
    colours = {"plain": "tab:red", "residual": "tab:blue"}
    styles = ["o-", "s--", "^:", "d-."]
    fig, axes = new_figure(2, 2, size=(13, 9), sharex=True)
    titles = {"kaiming": "Kaiming init N(0, 2/in) (arrayml default)",
              "scaled": f"second Linear of each block × 1/√(2·{args.depth})"}
    depths = np.arange(1, args.depth + 1)
    for col, init in enumerate(INITS):
        for row, (key, label) in enumerate((("input_grad_norm", "‖∂L/∂(input of block d)‖"),
                                            ("first_weight_grad_norm", "‖∂L/∂W‖, first Linear of block d"))):
            ax = axes[row, col]
            for c in curves:
                if c["init"] != init:
                    continue
                style = styles[args.activations.index(c["activation"]) % len(styles)]
                ax.plot(depths, c[key], style, ms=4, color=colours[c["kind"]],
                        label=f"{c['kind']}, {c['activation']}")
            ax.set_yscale("log")
            ax.set_xticks([1, *range(5, args.depth + 1, 5)] if args.depth >= 10 else list(depths))
            ax.set(ylabel=label)
            ax.grid(alpha=0.3, which="both")
            if row == 0:
                ax.set_title(titles[init])
            else:
                ax.set_xlabel("block depth d (1 = input side)")
            ax.legend(fontsize=8)
    fig.suptitle(f"Gradient norms at initialisation, {args.depth} blocks Linear→act→Linear, width {args.width}, "
                 f"batch {args.batch}: plain vs residual")
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    """The set-up, the figure, the table of ratios, the mean-field check, then what this shows."""
    w = rep.w
    st = s["settings"]
    w(f"A stack of {st['depth']} blocks `{st['block']}` (width {st['width']}, batch {st['batch']}), with and without "
      "the skip connection `Residual(block)`, at initialisation. The loss is a fixed random linear readout, so "
      "both variants receive the same gradient at the top; each block's backward is called in turn and the norm "
      "of the gradient arriving at its input is recorded (`examples/experiments/residual.py`).\n")
    rep.fig("residual/residual_gradient_norms.png", "gradient norm at each depth, plain against residual")
    rep.table(("initialisation", "activation", f"‖grad at block 1‖ / ‖grad at block {st['depth']}‖, plain", "residual"),
              ((init, act, f"{v['plain']:.3g}", f"{v['residual']:.3g}")
               for init, acts in s["input_grad_ratio_first_to_last"].items() for act, v in acts.items()))
    mean_field = mean_field_text(s)
    if mean_field:
        w(mean_field)
    w(what_it_shows_text(s))


def ratio(s: dict, init: str, act: str, kind: str) -> float | None:
    """‖grad at block 1‖ / ‖grad at the last block‖ for one variant, None where it was not run."""
    return s["input_grad_ratio_first_to_last"].get(init, {}).get(act, {}).get(kind)


def mean_field_text(s: dict) -> str:
    """The ReLU ratios against the mean-field prediction ("" when there is nothing to compare)."""
    pred = s.get("relu_mean_field_prediction", {})
    pairs = [(f"{init} {kind}", pred[init][kind], ratio(s, init, "relu", kind))
             for init in ("kaiming", "scaled") for kind in ("plain", "residual")
             if isinstance(pred.get(init), dict) and kind in pred[init] and ratio(s, init, "relu", kind) is not None]
    if not pairs:
        return ""
    factor = max(max(m / p, p / m) for _, p, m in pairs)
    return ("A mean-field estimate for ReLU predicts " + ", ".join(f"{p:.3g} ({name})" for name, p, _ in pairs)
            + f"; the measurements are within a factor of {factor:.2f} of these predictions"
            + (", the same order of magnitude.\n" if factor < 10 else ", so they do not agree in order of magnitude.\n"))


def what_it_shows_text(s: dict) -> str:
    """Kaiming initialisation: what the identity path guarantees and what it does not; scaled
    blocks: residual against plain."""

    def show(x: float | None, fmt: str = ".3g") -> str:
        return "not run" if x is None else format(x, fmt)

    kp, kr = ratio(s, "kaiming", "relu", "plain"), ratio(s, "kaiming", "relu", "residual")
    sp_relu, sr_relu = ratio(s, "scaled", "relu", "plain"), ratio(s, "scaled", "relu", "residual")
    sp_tanh, sr_tanh = ratio(s, "scaled", "tanh", "plain"), ratio(s, "scaled", "tanh", "residual")
    text = "**What this shows.** "
    if kp is not None and kr is not None:
        text += (f"With the default Kaiming initialisation on *both* Linears of every block, the plain stack's gradient "
                 f"{'grows' if kp > 1 else 'shrinks'} towards the input (ratio {kp:.3g} with ReLU) and the residual "
                 f"stack's {'grows' if kr > 1 else 'shrinks'} {'faster' if kr > kp else 'less'} ({kr:.3g}). The backward "
                 "pass of y = x + f(x) is dx = dy + J_fᵀ dy: the block's own term is added on top of the identity path, "
                 "so the skip connection guarantees that the gradient from above reaches every block through the "
                 "identity term, not that its norm stays constant. ")
    if sr_relu is not None and sp_relu is not None:
        text += (f"With each block's second Linear scaled by 1/√(2·depth) (as in Fixup or GPT-2's initialisation) the "
                 f"residual stack's ratio is {show(sr_relu, '.2f')} (ReLU) and {show(sr_tanh, '.2f')} (tanh) over "
                 f"{s['settings']['depth']} blocks, while the same scaled plain stack's is {show(sp_relu, '.1e')} (ReLU) and "
                 f"{show(sp_tanh, '.1e')} (tanh)"
                 + (": without the identity path, small blocks multiply the gradient towards zero."
                    if sp_relu < 1e-3 and (sp_tanh is None or sp_tanh < 1e-3) else "."))
    return text.rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def gradient_ratios(rep: Report) -> str:
    s = rep.need("residual")
    r, depth = s["input_grad_ratio_first_to_last"], s["settings"]["depth"]
    scaled, kaiming = r.get("scaled", {}).get("relu"), r.get("kaiming", {}).get("relu")
    text = ""
    if scaled:
        text += (f"Measured over {depth} blocks at initialisation ({rep.link('residual')}), with each block's second "
                 f"Linear scaled by 1/√(2·depth): ‖grad at block 1‖ / ‖grad at block {depth}‖ is "
                 f"{scaled['residual']:.3g} with the skips and {scaled['plain']:.3g} without (ReLU). ")
    if kaiming:
        text += (f"With both Linears at the default Kaiming scale the ratio is {kaiming['residual']:.3g} with the skips "
                 f"against {kaiming['plain']:.3g} without: the skip guarantees a path for the gradient, not a constant "
                 "norm, which is why residual networks also keep each block's contribution small at initialisation.")
    return text


if __name__ == "__main__":
    main()
