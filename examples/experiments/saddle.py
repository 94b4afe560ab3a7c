#!/usr/bin/env python
"""Saddle points: gradient descent near a saddle, and how rare minima are among critical points.

    python examples/experiments/saddle.py                  # numpy, a few seconds
    python examples/experiments/saddle.py --xp array-api-strict

(a) Gradient descent on ``f(x) = ½ xᵀ H x`` with ``H = diag(λ₊, λ₋) = diag(1, −1)``: a saddle at
0, the x₁ axis its stable manifold (positive curvature), the x₂ axis the unstable one (negative
curvature). One step is ``x ← x − η H x = (I − η H) x``, so the coordinate along the eigenvector
of eigenvalue λ is multiplied by exactly ``1 − η λ`` per step: it shrinks as ``(1 − η λ₊)^t``
and grows as ``(1 + η |λ₋|)^t``. Started a hair off the stable manifold, gradient descent first
slides towards the saddle, stalls there, then escapes along x₂ geometrically.

(b) If each of the n Hessian eigenvalues at a critical point is positive or negative by a fair
coin, the critical point is a minimum (all positive) with probability exactly ``2⁻ⁿ``: in high
dimensions almost every critical point is a saddle. Computed exactly and estimated by Monte
Carlo (a seeded NumPy generator, `--draws` coin-flip vectors per n). For large n the expected
number of hits, ``draws · 2⁻ⁿ``, drops below one, and the estimate is 0: the figure shows those n
separately rather than hiding them.

Writes results/saddle/saddle.json, saddle_trajectories.png and saddle_minima_fraction.png.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from arrayml import backend
from arrayml.backend import Array, Placement
from arrayml_app.experiments import Stopwatch, command_line, out_dir, parser, save_json
from arrayml_app.figures import finish_axes, new_figure, save_figure
from arrayml_app.report import Report

#: Hessian eigenvalues (λ₊, λ₋); the eigenvectors are the coordinate axes e₁, e₂.
EIGENVALUES = (1.0, -1.0)
#: Starting points a hair off the stable manifold (the x₁ axis).
STARTS = (
    (1.5, 1e-3), (1.5, -1e-3), (-1.5, 1e-3), (-1.5, -1e-3),
    (1.0, 1e-2), (1.0, -1e-2), (-1.0, 1e-2), (-1.0, -1e-2),
)


def hessian(where: Placement) -> Array:
    """``H = diag(λ₊, λ₋)`` on the chosen backend."""
    lp, lm = EIGENVALUES
    return where.xp.asarray([[lp, 0.0], [0.0, lm]], dtype=where.dtype, device=where.device)


def gradient_descent(starts: Any, *, lr: float, steps: int, where: Placement) -> Array:
    """Gradient descent on ``f(x) = ½ xᵀ H x`` from every start at once.

    Returns the trajectories as an array of shape (steps + 1, starts, 2): row t holds every
    iterate after t steps. With the iterates as rows X, ``∇f = X H`` (H is symmetric).
    """
    xp = where.xp
    H = hessian(where)
    X = xp.asarray(starts, dtype=where.dtype, device=where.device)
    path = [X]
    for _ in range(steps):
        X = X - lr * (X @ H)
        path.append(X)
    return xp.stack(path)


def objective(X: Array) -> Array:
    """``½ xᵀ H x`` for every row of `X` (any leading shape, last axis 2)."""
    lp, lm = EIGENVALUES
    return 0.5 * (lp * X[..., 0] * X[..., 0] + lm * X[..., 1] * X[..., 1])


def minima_fractions(max_n: int, draws: int, seed: int) -> list[dict]:
    """Exact ``2⁻ⁿ`` and its Monte Carlo estimate for n = 1..max_n.

    For each n, `draws` vectors of n fair coins (1 = positive eigenvalue) are drawn from one seeded
    generator; a draw is a minimum when all n coins are 1. The standard error uses the exact p.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(1, max_n + 1):
        coins = rng.integers(0, 2, size=(draws, n), dtype=np.uint8)
        hits = int(np.count_nonzero(np.all(coins == 1, axis=1)))
        exact = 2.0 ** -n  # a power of two: exact in floating point
        estimate = hits / draws
        se = math.sqrt(exact * (1.0 - exact) / draws)
        rows.append({
            "n": n, "exact": exact, "exact_as_fraction": f"1/{2 ** n}", "draws": draws, "hits": hits,
            "expected_hits": draws * exact, "estimate": estimate, "standard_error": se,
            "z_score": (estimate - exact) / se,
        })
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0], training=False)
    p.add_argument("--lr", type=float, default=0.1, help="gradient-descent step size η (default 0.1)")
    p.add_argument("--steps", type=int, default=60, help="gradient-descent steps (default 60)")
    p.add_argument("--max-n", type=int, default=20, help="largest number of eigenvalues n (default 20)")
    p.add_argument("--draws", type=int, default=200_000, help="Monte Carlo draws per n (default 200000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo generator (default 0)")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.max_n < 1 or args.draws < 1 or not args.lr > 0:
        p.error("--steps, --max-n and --draws must be at least 1, --lr positive")
    out = out_dir(args, "saddle")
    clock = Stopwatch()
    where = backend.placement(args.xp, args.device, args.dtype)

    # (a) gradient descent near the saddle: one host read-back of the whole trajectory
    traj = gradient_descent(STARTS, lr=args.lr, steps=args.steps, where=where)
    f_traj = objective(traj)
    path = np.asarray(backend.to_numpy(traj), dtype=np.float64)
    f_path = np.asarray(backend.to_numpy(f_traj), dtype=np.float64)
    lp, lm = EIGENVALUES
    t = np.arange(args.steps + 1, dtype=np.float64)
    grow, shrink = 1.0 - args.lr * lm, 1.0 - args.lr * lp  # 1 + η|λ₋| and 1 − ηλ₊
    pred_neg = np.abs(path[0, :, 1])[None, :] * grow ** t[:, None]
    pred_pos = np.abs(path[0, :, 0])[None, :] * np.abs(shrink) ** t[:, None]
    rel_neg = np.abs(np.abs(path[:, :, 1]) - pred_neg) / pred_neg
    rel_pos = np.abs(np.abs(path[:, :, 0]) - pred_pos) / pred_pos
    dist = np.linalg.norm(path, axis=2)
    trajectories = []
    for i, start in enumerate(STARTS):
        closest = int(np.argmin(dist[:, i]))
        escaped = np.nonzero(np.abs(path[:, i, 1]) > np.abs(path[:, i, 0]))[0]
        trajectories.append({
            "start": list(start), "end": path[-1, i].tolist(), "f_start": f_path[0, i], "f_end": f_path[-1, i],
            "closest_step": closest, "closest_distance": dist[closest, i],
            "first_step_negative_coordinate_dominates": int(escaped[0]) if escaped.size else None,
            "negative_curvature_growth": abs(path[-1, i, 1] / path[0, i, 1]),
            "positive_curvature_shrink": abs(path[-1, i, 0] / path[0, i, 0]),
            "x1": path[:, i, 0].tolist(), "x2": path[:, i, 1].tolist(),
        })
    gd = {
        "hessian_eigenvalues": list(EIGENVALUES), "lr": args.lr, "steps": args.steps,
        "predicted_growth_per_step": grow, "predicted_shrink_per_step": shrink,
        "predicted_growth_total": grow ** args.steps, "predicted_shrink_total": abs(shrink) ** args.steps,
        "max_relative_error_negative_curvature_vs_closed_form": float(np.max(rel_neg)),
        "max_relative_error_positive_curvature_vs_closed_form": float(np.max(rel_pos)),
        "trajectories": trajectories,
    }
    plot_trajectories(path, f_path, args, grow, shrink, out / "saddle_trajectories.png")

    # (b) the fraction of critical points that are minima
    rows = minima_fractions(args.max_n, args.draws, args.seed)
    plot_fractions(rows, args, out / "saddle_minima_fraction.png")

    summary = {
        "experiment": "saddle", "command": command_line("saddle.py", argv), "backend": str(where),
        "settings": {"lr": args.lr, "steps": args.steps, "max_n": args.max_n, "draws": args.draws,
                     "seed": args.seed, "dtype": args.dtype, "starts": [list(s) for s in STARTS]},
        "gradient_descent": gd,
        "minima_fraction": rows,
        "seconds": clock.seconds(),
    }
    save_json(summary, out / "saddle.json")

    print(f"(a) GD on ½xᵀHx, H = diag{EIGENVALUES}, η = {args.lr}, {args.steps} steps, {where}")
    print(f"    per step: x₂ × {grow:g} (predicted 1 + η|λ₋|), x₁ × {shrink:g} (predicted 1 − ηλ₊); "
          f"over {args.steps} steps: × {grow ** args.steps:.6g} and × {abs(shrink) ** args.steps:.6g}")
    print(f"    largest relative deviation from the closed form: x₂ {gd['max_relative_error_negative_curvature_vs_closed_form']:.2e}, "
          f"x₁ {gd['max_relative_error_positive_curvature_vs_closed_form']:.2e}")
    for tr in trajectories:
        print(f"    start ({tr['start'][0]:+.1f}, {tr['start'][1]:+.0e}) -> end ({tr['end'][0]:+.2e}, {tr['end'][1]:+.3f}), "
              f"closest {tr['closest_distance']:.3g} at step {tr['closest_step']}, f {tr['f_start']:.3g} -> {tr['f_end']:.3g}")
    print(f"(b) fraction of minima when each of n eigenvalue signs is a fair coin ({args.draws} draws per n):")
    print(f"    {'n':>3}{'exact 2^-n':>14}{'hits':>8}{'estimate':>14}{'std err':>12}{'z':>7}")
    for r in rows:
        print(f"    {r['n']:>3}{r['exact']:>14.6e}{r['hits']:>8}{r['estimate']:>14.6e}{r['standard_error']:>12.2e}{r['z_score']:>7.2f}")
    print(f"wrote {out / 'saddle.json'}, saddle_trajectories.png, saddle_minima_fraction.png ({summary['seconds']:.1f}s)")
    return summary


def plot_trajectories(path: np.ndarray, f_path: np.ndarray, args: Any, grow: float, shrink: float,
                      file: Path) -> None:

    fig, (ax, bx) = new_figure(1, 2, size=(13, 7), gridspec_kw={"width_ratios": [1, 1.5]})
    lp, lm = EIGENVALUES
    xmax = 1.1 * float(np.max(np.abs(path[:, :, 0])))
    ymax = 1.1 * float(np.max(np.abs(path[:, :, 1])))
    gx, gy = np.meshgrid(np.linspace(-xmax, xmax, 301), np.linspace(-ymax, ymax, 301))
    fz = 0.5 * (lp * gx * gx + lm * gy * gy)
    top = float(np.max(np.abs(fz)))
    levels = np.linspace(-top, top, 25)
    ax.contourf(gx, gy, fz, levels=levels, cmap="RdBu_r", alpha=0.35)
    cs = ax.contour(gx, gy, fz, levels=levels[::2], colors="grey", linewidths=0.6)
    ax.clabel(cs, fontsize=7, fmt="%.1f")
    colours = matplotlib.colormaps.get_cmap("tab10")
    for i, start in enumerate(STARTS):
        c = colours(i % 10)
        ax.plot(path[:, i, 0], path[:, i, 1], ".-", ms=3, lw=1, color=c,
                label=f"({start[0]:+.1f}, {start[1]:+.0e})")
        ax.plot(path[0, i, 0], path[0, i, 1], "o", ms=8, mfc="none", mew=1.5, color=c)
        ax.plot(path[-1, i, 0], path[-1, i, 1], "X", ms=9, color=c, mec="black", mew=0.5)
    ax.plot([0], [0], "k*", ms=14, label="saddle (0, 0)")
    ax.plot([], [], "ko", mfc="none", label="start")
    ax.plot([], [], "kX", label=f"end (step {args.steps})")
    ax.set_aspect("equal")
    ax.set(xlim=(-xmax, xmax), ylim=(-ymax, ymax),
           xlabel=f"x₁ (eigenvector e₁, λ₊ = {lp:g})", ylabel=f"x₂ (eigenvector e₂, λ₋ = {lm:g})",
           title=f"GD on f(x) = ½ xᵀ diag({lp:g}, {lm:g}) x, η = {args.lr:g}")
    ax.legend(fontsize=7, loc="lower left", framealpha=0.85, title="GD from x₀ =", title_fontsize=7)

    t = np.arange(path.shape[0])
    for i in range(len(STARTS)):
        bx.plot(t, np.abs(path[:, i, 1]), "o", ms=4, color="tab:red", alpha=0.6,
                label="|x₂|, negative curvature (GD)" if i == 0 else None)
        bx.plot(t, np.abs(path[:, i, 0]), "v", ms=4, color="tab:blue", alpha=0.6,
                label="|x₁|, positive curvature (GD)" if i == 0 else None)
    for j, a0 in enumerate(sorted({abs(s[1]) for s in STARTS})):
        bx.plot(t, a0 * grow ** t, "k--", lw=1,
                label=f"|x₂(0)|·(1 + η|λ₋|)ᵗ = |x₂(0)|·{grow:g}ᵗ" if j == 0 else None)
    for j, a0 in enumerate(sorted({abs(s[0]) for s in STARTS})):
        bx.plot(t, a0 * abs(shrink) ** t, "k:", lw=1.2,
                label=f"|x₁(0)|·(1 − ηλ₊)ᵗ = |x₁(0)|·{shrink:g}ᵗ" if j == 0 else None)
    bx.set_yscale("log")
    finish_axes(bx, legend={"fontsize": 8, "loc": "center right"}, grid={"which": "both"}, xlabel="gradient-descent step t",
                ylabel="|coordinate along the eigenvector|", title="distance along each eigenvector: escape is geometric")
    fig.tight_layout()
    save_figure(fig, file)


def plot_fractions(rows: list[dict], args: Any, file: Path) -> None:
    n = np.array([r["n"] for r in rows])
    exact = np.array([r["exact"] for r in rows])
    est = np.array([r["estimate"] for r in rows])
    se = np.array([r["standard_error"] for r in rows])
    hit = est > 0
    fig, ax = new_figure(size=(8, 5.5))
    ax.plot(n, exact, "k-", lw=1.5, label="exact 2⁻ⁿ")
    ax.errorbar(n[hit], est[hit], yerr=2 * se[hit], fmt="o", ms=5, color="tab:orange", capsize=3,
                label=f"Monte Carlo, {args.draws} draws per n (± 2 std. err.)")
    floor = 1.0 / args.draws
    if np.any(~hit):
        ax.plot(n[~hit], np.full(int(np.sum(~hit)), floor), "v", ms=8, mfc="none", color="tab:red",
                label="Monte Carlo: no hit at all (estimate 0, not drawable on a log axis)")
    ax.axhline(floor, color="grey", ls=":", lw=1, label=f"one hit in {args.draws} draws")
    ax.set_yscale("log")
    ax.set_xticks(n if len(n) <= 25 else n[:: max(1, len(n) // 20)])
    finish_axes(ax, legend={"fontsize": 8}, grid={"which": "both"}, xlabel="n, number of Hessian eigenvalues (dimension)",
                ylabel="fraction of critical points that are minima",
                title="Minima among critical points when each eigenvalue's sign is a fair coin")
    fig.tight_layout()
    save_figure(fig, file)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    w = rep.w
    gd = s["gradient_descent"]
    g, shrink = gd["predicted_growth_per_step"], gd["predicted_shrink_per_step"]
    err = max(gd["max_relative_error_negative_curvature_vs_closed_form"], gd["max_relative_error_positive_curvature_vs_closed_form"])
    w(f"Gradient descent (η = {gd['lr']}, {gd['steps']} steps) on f(x) = ½ xᵀHx with H = diag{tuple(gd['hessian_eigenvalues'])}, "
      "started close to the stable direction. Along the eigenvector of the negative eigenvalue the coordinate is "
      f"multiplied by 1 + η|λ₋| = {g:g} per step (×{gd['predicted_growth_total']:.1f} over the run); along the positive "
      f"one by 1 − ηλ₊ = {shrink:g} (×{gd['predicted_shrink_total']:.2e}). The measured trajectories match these "
      f"closed forms to a relative {err:.0e}. GD first slides towards the saddle, slows down near it (the gradient "
      "vanishes there), then escapes along the negative-curvature direction — geometrically, but only as fast as "
      f"the initial offset allows: starting 10× closer to the stable axis costs log(10)/log({g:g}) ≈ "
      f"{math.log(10) / math.log(g):.0f} extra steps.\n")
    rep.fig("saddle/saddle_trajectories.png", "trajectories near the saddle and the escape along negative curvature")
    w("If each of the n eigenvalues of the Hessian at a critical point is positive or negative with probability ½, "
      "independently, the point is a minimum only when all n are positive: probability 2⁻ⁿ, which vanishes as n "
      "grows; in that model almost every critical point of a high-dimensional loss is a saddle.\n")
    estimates = ((row, row.get("estimate", row.get("monte_carlo"))) for row in s["minima_fraction"])
    rep.table(("n", "exact 2⁻ⁿ", "Monte Carlo estimate", "draws"),
              ((row["n"], f"{row['exact']:.3g}", "—" if est is None else f"{est:.3g}", row["draws"])
               for row, est in estimates if row["n"] in (1, 2, 3, 5, 10, 15, 20)))
    rep.fig("saddle/saddle_minima_fraction.png", "fraction of critical points that are minima")


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def minima_fraction(rep: Report) -> str:
    rows = {row["n"]: row for row in rep.need("saddle")["minima_fraction"]}
    shown = [rows[n] for n in (10, max(rows)) if n in rows]
    return (f"Counted by Monte Carlo ({rep.link('saddle')}): "
            + "; ".join(f"for n = {row['n']}, {row['hits']} of {row['draws']} random sign patterns are all positive "
                        f"({row['hits'] / row['draws']:.3g}, against 2⁻ⁿ = {row['exact']:.3g}, i.e. "
                        f"{row['draws'] * row['exact']:.3g} expected)" for row in shown) + ".")


def escape(rep: Report) -> str:
    gd = rep.need("saddle")["gradient_descent"]
    lam = gd["hessian_eigenvalues"]
    starts = {tuple(t["start"]): t for t in gd["trajectories"] if t["start"][0] > 0 and t["start"][1] > 0}
    worst = max(gd["max_relative_error_negative_curvature_vs_closed_form"],
                gd["max_relative_error_positive_curvature_vs_closed_form"])
    return (f"Measured ({rep.link('saddle')}; f = ½xᵀHx, H = diag{tuple(lam)}, η = {gd['lr']}): the factors are "
            f"{gd['predicted_shrink_per_step']:g} and {gd['predicted_growth_per_step']:g} per step, matched to a relative "
            f"{worst:.0e}; "
            + "; ".join(f"started at {list(x0)}, GD passes closest to the saddle at step {t['closest_step']} "
                        f"(distance {t['closest_distance']:.3f}) before the unstable coordinate takes over"
                        for x0, t in sorted(starts.items(), key=lambda kv: kv[0][1]))
            + "; the coordinates cross where |x₁(0)|(1 − ηλ₊)ᵗ = |x₂(0)|(1 + η|λ₋|)ᵗ, i.e. at "
            "t = ln(|x₁(0)|/|x₂(0)|) / ln((1 + η|λ₋|)/(1 − ηλ₊)) = "
            + " and ".join(f"{crossing(x0, gd):.1f}" for x0 in sorted(starts, key=lambda x: x[1])) + ".")


def crossing(start: tuple[float, float], gd: dict) -> float:
    """The step at which the unstable coordinate of gradient descent from `start` overtakes the stable one."""
    grow, shrink = gd["predicted_growth_per_step"], gd["predicted_shrink_per_step"]
    return math.log(abs(start[0]) / abs(start[1])) / math.log(grow / shrink)


if __name__ == "__main__":
    main()
