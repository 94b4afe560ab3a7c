"""The assignment, question by question: one entry per numbered question and sub-question of the
assignment (the team's index of them: assignment/QUESTIONS.md in the shared folder), with what it
asks, its written answer and what else answers it (a run, figure, table, test or derivation).

make_report.py writes the map at the top of docs/results.md and the page docs/answers.md from
`QUESTIONS`. Every figure an answer quotes is read from results/ when the page is written, so the
answers cannot drift from the runs; an experiment that has not been run is named as such.
Derivations are linked (docs/derivations.md), not repeated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from arrayml_app.experiments import experiment
from arrayml_app.report import Report, acc, anchor, listing, pct, spread

IDENT = "tests/test_identities.py"
DERIV = "derivations.md"
TRAINING_TESTS = "examples/tests/test_experiments_training.py"


@dataclass(frozen=True)
class Question:
    number: str  #: as the assignment numbers it: "Example 1", "1.1 a", "2.2 i", ...
    asks: str  #: the question, in a few words
    answer: Callable[[Report], str]  #: its written answer (Markdown), from the results
    evidence: Callable[[Report], str]  #: the runs, figures, tables, tests and derivations that back it

    @property
    def heading(self) -> str:
        """Its heading in docs/answers.md: the number alone, so that its anchor is plain ("2.2 i" → #22-i)."""
        return self.number

    def link(self, page: str = "answers.md") -> str:
        """A Markdown link to this question's answer."""
        return f"[answer]({page}#{anchor(self.heading)})"


def not_run(name: str) -> str:
    return f"_(The {name} experiment has not been run: `{experiment(name).command()}` gives its numbers.)_"


def figure(rep: Report, path: str) -> str:
    return f"[`{path}`]({rep.figures}/{path})"


def test(path: str, *names: str) -> str:
    return f"`{path}`" + (": " + ", ".join(f"`{n}`" for n in names) if names else "")


def derivation(title: str, section: str) -> str:
    return f"{DERIV}, [{title}]({DERIV}#{anchor(section)})"


# --------------------------------------------------------------------------------------------
# The drills and Part 1: results of derivations (linked), and the residual connection
# --------------------------------------------------------------------------------------------


def identity(formula: str, how: str) -> Callable[[Report], str]:
    def answer(rep: Report) -> str:
        return f"{formula}. {how} Derivation: {derivation('Matrix-calculus identities', 'Matrix-calculus identities')}."
    return answer


def a_1_2(rep: Report) -> str:
    s, run = rep.load("default_mlp", "summary.json"), rep.default_run()
    ours = (s or {}).get("runs", {}).get("arrayml-relu")
    if not ours or ours.get("test_accuracy") is None:
        return not_run("default_mlp")
    cfg = run.get("config", {})
    return (f"The NumPy MLP (arrayml on NumPy, {cfg.get('dtype', '?')}; hidden layers {cfg.get('hidden_dims', '?')}, "
            f"ReLU, {cfg.get('epochs', '?')} epochs, learning rate {cfg.get('lr', '?')}, batch {cfg.get('batch_size', '?')}, "
            f"seed {cfg.get('seed', '?')}) reaches **{acc(ours['test_accuracy'])}** test accuracy with the model of its best "
            f"validation epoch ({ours['best_epoch']}, validation {pct(ours['best_val_accuracy'])}), against the "
            f"assignment's expected 47–48%. Loss curve: {figure(rep, 'default_mlp/arrayml-relu/loss_curve.png')}. Every "
            "product is a matrix product over the whole batch: `Linear` is `x @ W.T + b` forward and `dy.T @ x`, "
            "`dy @ W` backward (`arrayml/modules/linear.py`); the course's module interface is `arrayml.compat`.")


def a_2_1(rep: Report) -> str:
    s = rep.load("default_mlp", "summary.json")
    runs = (s or {}).get("runs", {})
    ours, ref = runs.get("arrayml-relu"), runs.get("torch-reference-relu")
    if not ours or not ref:
        return not_run("default_mlp")
    a, t = ours.get("first_step_losses", []), ref.get("first_step_losses", [])
    same = (f" Started from the same weights on the same batches, their first {len(a)} losses agree to a relative "
            f"{max(abs(x - y) / abs(y) for x, y in zip(a, t)):.1e}." if a and t else "")
    return (f"The same network in `torch.nn` with autograd and `torch.optim.SGD` (`examples/torch_reference.py`, "
            f"the same defaults) reaches **{acc(ref['test_accuracy'])}** test accuracy against arrayml's "
            f"{acc(ours['test_accuracy'])}.{same} Batch normalisation is the flag `--batch-norm` of both scripts "
            f"(a `BatchNorm1d` between every hidden `Linear` and its activation). Loss curves of both: "
            f"{figure(rep, 'default_mlp/default_mlp_curves.png')}.")


def a_1_1_d_i(rep: Report) -> str:
    return ("The skip adds X to the block's output entry by entry, Y = X + f(X), so f must keep X's shape: the "
            "second Linear's output width N₂ must equal the width of X (its input width). The first Linear's "
            "width N₁, the hidden width inside the block, is free. In a stack of such blocks every block therefore "
            "has the same input and output width.")


def a_1_1_d_ii(rep: Report) -> str:
    return ("With Z = XW₁ᵀ + b₁, H = h(Z) and f(X) = HW₂ᵀ + b₂ (weights shaped (out, in)), the chain rule through "
            "the block (1.1 a and b) plus the identity path gives\n\n"
            "∂L/∂X = ∂L/∂Y + [((∂L/∂Y) W₂) ∘ h′(Z)] W₁ ,\n\n"
            "i.e. dX = dY + J_fᵀ dY: the gradient from above reaches X unchanged, and the block's own term is "
            "added to it. The parameter gradients are those of the block alone. Derivation: "
            f"{derivation('Residual connection', 'Residual connection')}.")


def a_1_1_d_iii(rep: Report) -> str:
    text = ("For a stack X_{k+1} = X_k + f_k(X_k), k = 1…K, the gradient at the input is "
            "dX₁ = (I + J₁)ᵀ ⋯ (I + J_K)ᵀ dX_{K+1}. Without the skips it is J₁ᵀ ⋯ J_Kᵀ dX_{K+1}, a product of K "
            "Jacobians, which shrinks or grows geometrically in K unless every block is tuned to preserve norms: "
            "deep plain stacks lose (or blow up) the gradient at their first layers. Expanded, the residual product "
            "is I + Σ_k J_kᵀ + (products of two or more J's): it always contains the identity, so the gradient of "
            "the top reaches every block directly, however small the J_k are, and each block only has to learn a "
            "correction to the identity. ")
    s = rep.load("residual", "residual.json")
    if s is None:
        return text + not_run("residual")
    r, depth = s["input_grad_ratio_first_to_last"], s["settings"]["depth"]
    scaled, kaiming = r.get("scaled", {}).get("relu"), r.get("kaiming", {}).get("relu")
    if scaled:
        text += (f"Measured over {depth} blocks at initialisation ({rep.link('residual')}), with each block's second "
                 f"Linear scaled by 1/√(2·depth): ‖grad at block 1‖ / ‖grad at block {depth}‖ is "
                 f"{scaled['residual']:.3g} with the skips and {scaled['plain']:.3g} without (ReLU). ")
    if kaiming:
        text += (f"With both Linears at the default Kaiming scale the ratio is {kaiming['residual']:.3g} with the skips "
                 f"against {kaiming['plain']:.3g} without: the skip guarantees a path for the gradient, not a constant "
                 "norm, which is why residual networks also keep each block's contribution small at initialisation.")
    return text.rstrip()


# --------------------------------------------------------------------------------------------
# 2.2: critical points
# --------------------------------------------------------------------------------------------


def a_2_2_i(rep: Report) -> str:
    return ("Let x* be a local minimum of a twice continuously differentiable f. Then ∇f(x*) = 0, and the Hessian "
            "H = ∇²f(x*) is symmetric, so it has real eigenvalues with unit eigenvectors, Hv = λv, ‖v‖ = 1. Taylor "
            "along v: f(x* + tv) = f(x*) + ½λt² + o(t²). If λ < 0, then f(x* + tv) < f(x*) for every small t ≠ 0, "
            "which contradicts minimality; so every eigenvalue is ≥ 0. A strict minimum in the sense used for "
            "training (a non-degenerate one: f(x* + δ) ≥ f(x*) + ½m‖δ‖² near x* for some m > 0) gives "
            "½λt² + o(t²) ≥ ½mt², hence λ ≥ m > 0: every eigenvalue is positive and H is positive definite. "
            "(f(x) > f(x*) for x ≠ x* alone is not enough: f(x) = x⁴ has a strict minimum at 0 with f″(0) = 0. "
            "Conversely, ∇f(x*) = 0 with H positive definite is sufficient for a strict local minimum.)")


def a_2_2_ii(rep: Report) -> str:
    text = ("At a critical point the signs of the n Hessian eigenvalues decide its kind: all positive, a minimum; "
            "all negative, a maximum; mixed, a saddle. If each sign were an independent fair coin, a critical point "
            "would be a minimum with probability 2⁻ⁿ, a maximum with 2⁻ⁿ and a saddle with 1 − 2¹⁻ⁿ: saddles "
            "outnumber minima (2ⁿ − 2) to 1, exponentially in the dimension, and a network with hundreds of "
            "thousands of parameters has essentially only saddles among its critical points. (A heuristic: real "
            "eigenvalues are not independent coins, and critical points of low loss are more often minima.) ")
    s = rep.load("saddle", "saddle.json")
    if s is None:
        return text + not_run("saddle")
    rows = {row["n"]: row for row in s["minima_fraction"]}
    shown = [rows[n] for n in (10, max(rows)) if n in rows]
    text += (f"Counted by Monte Carlo ({rep.link('saddle')}): "
             + "; ".join(f"for n = {row['n']}, {row['hits']} of {row['draws']} random sign patterns are all positive "
                         f"({row['hits'] / row['draws']:.3g}, against 2⁻ⁿ = {row['exact']:.3g}, i.e. "
                         f"{row['draws'] * row['exact']:.3g} expected)" for row in shown) + ".")
    return text


def a_2_2_iii(rep: Report) -> str:
    text = ("Near a critical point x* with Hessian H, ∇f(x) ≈ H(x − x*), so gradient descent gives "
            "x_{t+1} − x* = (I − ηH)(x_t − x*). Along a unit eigenvector v_i (Hv_i = λ_iv_i) the coordinate "
            "c_i = v_iᵀ(x − x*) evolves as c_i(t) = (1 − ηλ_i)ᵗ c_i(0): it is multiplied by 1 − ηλ_i every "
            "step, so it shrinks where λ_i > 0 (for η < 2/λ_i) and grows by the factor 1 + η|λ_i| where λ_i < 0. Two consequences: (1) the step is "
            "η‖H(x − x*)‖, which tends to 0 near the saddle, so training slows to a plateau there; (2) escape "
            "needs the unstable coordinate to grow from c(0) to order one, which takes about "
            "ln(1/|c(0)|) / ln(1 + η|λ₋|) steps: arbitrarily long when the path starts close to the stable "
            "directions or when |λ₋| is small, and never when c(0) = 0 exactly (GD then converges to the saddle). ")
    s = rep.load("saddle", "saddle.json")
    if s is None:
        return text + not_run("saddle")
    gd = s["gradient_descent"]
    lam = gd["hessian_eigenvalues"]
    starts = {tuple(t["start"]): t for t in gd["trajectories"] if t["start"][0] > 0 and t["start"][1] > 0}
    text += (f"Measured ({rep.link('saddle')}; f = ½xᵀHx, H = diag{tuple(lam)}, η = {gd['lr']}): the factors are "
             f"{gd['predicted_shrink_per_step']:g} and {gd['predicted_growth_per_step']:g} per step, matched to a relative "
             f"{max(gd['max_relative_error_negative_curvature_vs_closed_form'], gd['max_relative_error_positive_curvature_vs_closed_form']):.0e}; "
             + "; ".join(f"started at {list(x0)}, GD passes closest to the saddle at step {t['closest_step']} "
                         f"(distance {t['closest_distance']:.3f}) before the unstable coordinate takes over"
                         for x0, t in sorted(starts.items(), key=lambda kv: kv[0][1]))
             + "; the coordinates cross where |x₁(0)|(1 − ηλ₊)ᵗ = |x₂(0)|(1 + η|λ₋|)ᵗ, i.e. at "
             "t = ln(|x₁(0)|/|x₂(0)|) / ln((1 + η|λ₋|)/(1 − ηλ₊)) = "
             + " and ".join(f"{crossing(x0, gd):.1f}" for x0 in sorted(starts, key=lambda x: x[1])) + ".")
    return text


def crossing(start: tuple[float, float], gd: dict) -> float:
    """The step at which the unstable coordinate of gradient descent from `start` overtakes the stable one."""
    grow, shrink = gd["predicted_growth_per_step"], gd["predicted_shrink_per_step"]
    return math.log(abs(start[0]) / abs(start[1])) / math.log(grow / shrink)


# --------------------------------------------------------------------------------------------
# 2.3: metrics
# --------------------------------------------------------------------------------------------


def a_2_3_i(rep: Report) -> str:
    text = ("Accuracy, (TP + TN)/N, the share of all predictions that are right, fits when the classes are about "
            "equally frequent and every mistake costs the same: (1) a benchmark with balanced classes such as "
            "CIFAR-10 (1000 test images per class); (2) reading handwritten digits, where each digit is about as "
            "common and any misread digit is equally wrong. It misleads under imbalance: with 1% positives, "
            "always answering \"negative\" is 99% accurate and finds nothing. "
            "Precision, TP/(TP + FP), the share of predicted positives that are right, matters when a false "
            "alarm is costly: (1) a spam filter (a real e-mail sent to spam may be lost); (2) the first page of a "
            "search engine's results (every wrong result shown costs the user). "
            "Recall, TP/(TP + FN), the share of actual positives that are found, matters when a miss is costly: "
            "(1) screening for a disease such as cancer (a missed case goes untreated); (2) detecting fraudulent "
            "payments or weapons at airport security (one miss outweighs many checks). ")
    s = rep.load("fbeta", "fbeta.json")
    if s is None:
        return text + not_run("fbeta")
    worst = min(s["per_class"], key=lambda row: row["recall"])
    text += (f"In this project ({rep.link('fbeta')}) the default model's accuracy is {acc(s['test_accuracy'])}, yet as "
             f"a detector of **{worst['class']}** it has precision {worst['precision']:.3f} and recall "
             f"{worst['recall']:.3f}: it finds only {100 * worst['recall']:.1f}% of the {worst['class']} images, which "
             "accuracy alone does not show.")
    return text


def a_2_3_ii(rep: Report) -> str:
    text = ("Per class c, precision P_c and recall R_c come from the confusion matrix, and "
            "F_β = (1 + β²)·P·R / (β²·P + R), the weighted harmonic mean that counts recall β times as much as "
            "precision (`arrayml.metrics`, on the device). ")
    s = rep.load("fbeta", "fbeta.json")
    if s is None:
        return text + not_run("fbeta")
    m = s["macro"]
    text += (f"On the test set ({rep.link('fbeta')}): highest precision {listing(s['highest_precision'])}; highest recall "
             f"{listing(s['highest_recall'])}; lowest recall {listing(s['lowest_recall'])}. Macro averages: "
             + ", ".join(f"F_{b} = {m['f' + b]:.3f}" for b in s["betas"])
             + f" (precision {m['precision']:.3f}, recall {m['recall']:.3f}): a small β gives about the precision, a "
             "large one about the recall. The per-class table is in the results.")
    return text


# --------------------------------------------------------------------------------------------
# 2.4: the learning rate
# --------------------------------------------------------------------------------------------


def sweep(rep: Report) -> tuple[dict, list[dict]] | None:
    """lr_sweep.json and its runs by increasing rate."""
    s = rep.load("lr_sweep", "lr_sweep.json")
    return None if s is None else (s, sorted(s["runs"], key=lambda r: r["lr"]))


def blow_up(rep: Report, run: dict) -> str:
    """The per-step losses of a diverged run until they stop being finite."""
    steps = ((rep.load("lr_sweep", f"lr{run['lr']:g}", "results.json") or {}).get("history") or {}).get("steps", {})
    finite = []
    for loss in steps.get("loss", []):
        if loss is None or not math.isfinite(loss):
            break
        finite.append(loss)
    if len(finite) < 2:
        return ""
    shown = " → ".join(f"{v:.3g}" for v in finite[:3]) + (f" → … → {finite[-1]:.3g}" if len(finite) > 3 else "")
    return f"its loss went {shown} over its first {len(finite)} steps, then NaN"


def a_2_4_i(rep: Report) -> str:
    text = ("Every update is θ ← θ − η∇L: the rate scales every step, so it alone decides whether training "
            "converges at all (on a quadratic with curvature λ, gradient descent is stable only for η < 2/λ), how "
            "fast it goes, and how close to a minimum the noisy mini-batch steps can settle. The other settings "
            "matter only once η is in the window where training works. Too high: steps overshoot along the steep "
            "directions, the loss oscillates or grows geometrically to inf/NaN, and the accuracy stays at chance. "
            "Too low: every step is tiny, the loss falls slowly, and reaching a given loss or accuracy takes many "
            "more steps, i.e. training time. ")
    found = sweep(rep)
    if found is None:
        return text + not_run("lr_sweep")
    _, runs = found
    low, high = runs[0], runs[-1]
    finished = [r for r in runs if r["best_val_accuracy"] is not None]
    best = max(finished, key=lambda r: r["best_val_accuracy"]) if finished else None
    classes = rep.classes()
    clauses = []
    if high["diverged"]:
        grew = blow_up(rep, high)
        clauses.append(f"at η = {high['lr']:g} the run diverged in epoch {high['diverged']['epoch']} at step "
                       f"{high['diverged']['step']}" + (f" ({grew})" if grew else ""))
    if low["train_loss"] and low["train_loss"][0] is not None:
        clause = (f"at η = {low['lr']:g} the training loss only went from {low['train_loss'][0]:.2f} (epoch 1) to "
                  f"{low['train_loss'][-1]:.2f} (epoch {len(low['train_loss'])}), with best validation accuracy "
                  f"{pct(low['best_val_accuracy'])}" + (f" (chance: {100 / len(classes):.0f}%)" if classes else ""))
        if best is not None and best is not low:
            faster = next((e for e, v in enumerate(best["train_loss"], 1) if v is not None and v < low["train_loss"][-1]), None)
            clause += (f", while η = {best['lr']:g} reached {pct(best['best_val_accuracy'])} best validation accuracy"
                       + (f" and was below that final loss after {'its first epoch' if faster == 1 else f'epoch {faster}'}"
                          if faster else ""))
        clauses.append(clause)
    if not clauses:
        return text.rstrip()
    epochs = max((len(r["train_loss"]) for r in runs if not r["diverged"]), default=0)
    return text + f"Measured ({rep.link('lr_sweep')}, {len(runs)} rates, {epochs} epochs each): " + "; ".join(clauses) + "."


def a_2_4_ii(rep: Report) -> str:
    text = ("A linear warm-up over the first epoch, then a cosine decay to zero (`--schedule warmup-cosine`; the "
            f"rate against the epoch: {figure(rep, 'schedules/schedules_lr.png')}). Why: at initialisation the loss "
            "is far from any minimum and its gradients are large, so the full rate at once overshoots; the warm-up "
            "keeps the first steps small until the loss has come down. Then a large rate makes fast progress across the loss surface, "
            "and decaying it shrinks the step, and with it the noise of mini-batch gradients (of size η times "
            "their spread), so that the weights settle into a minimum instead of bouncing around it. ")
    found = sweep(rep)
    if found:
        first = {r["lr"]: (r.get("step_loss_mean_10") or [None])[0] for r in found[1]}
        default_lr = rep.default_run().get("config", {}).get("lr")
        slower = [lr for lr in first if default_lr is not None and lr < default_lr and first[lr] is not None]
        if default_lr in first and first[default_lr] is not None and slower:
            lr = max(slower)
            losses = ((rep.load("default_mlp", "summary.json") or {}).get("runs", {}).get("arrayml-relu") or {}).get("first_step_losses")
            text += ("The overshoot is measured: "
                     + (f"the default run's first {len(losses)} losses are {', '.join(f'{v:.2f}' for v in losses)} "
                        f"({rep.link('default_mlp')}), and " if losses and losses[-1] > losses[0] else "")
                     + f"at η = {default_lr:g} the first ten steps average a loss of {first[default_lr]:.2f}, against "
                     f"{first[lr]:.2f} at η = {lr:g} ({rep.link('lr_sweep')}). ")
    s = rep.load("schedules", "schedules.json")
    if s is None:
        return text + not_run("schedules")
    ok = {k: r for k, r in s["runs"].items() if r["test_accuracy"] is not None}
    if "constant" not in ok or len(ok) < 2:
        return text.rstrip()
    const = ok["constant"]
    best = max((k for k in ok if k != "constant"), key=lambda k: ok[k]["test_accuracy"])
    text += (f"Over the same {len(const['val_accuracy'])} epochs ({rep.link('schedules')}), test accuracy is "
             + ", ".join(f"{acc(r['test_accuracy'])} ({k})" for k, r in ok.items())
             + f": the best schedule, **{best}**, gains {100 * (ok[best]['test_accuracy'] - const['test_accuracy']):+.2f} "
             "points over the constant rate")
    losses = {k: r.get("final_train_loss") for k, r in ok.items() if r.get("final_train_loss") is not None}
    if best in losses and "constant" in losses and min(losses, key=losses.get) == best:
        text += (f" and ends at the lowest training loss ({losses[best]:.3f} against {losses['constant']:.3f})")
    return text + "."


def a_2_4_iii(rep: Report) -> str:
    found = sweep(rep)
    if found is None:
        return not_run("lr_sweep")
    s, runs = found
    finished = sorted((r for r in runs if r["best_val_accuracy"] is not None), key=lambda r: -r["best_val_accuracy"])
    if not finished:
        return f"Every rate diverged ({rep.link('lr_sweep')}): there is no best rate."
    best = finished[0]
    diverged = [r for r in runs if r["diverged"]]
    text = (f"{len(runs)} rates from {runs[0]['lr']:g} to {runs[-1]['lr']:g}, plain SGD ({rep.link('lr_sweep')}; "
            f"best validation accuracy against rate: {figure(rep, 'lr_sweep/lr_sweep_accuracy.png')}; loss over time "
            f"per rate: {figure(rep, 'lr_sweep/lr_sweep_losses.png')}). Picked by validation accuracy, not test: "
            f"**η = {best['lr']:g}** ({pct(best['best_val_accuracy'])} validation, {acc(best['test_accuracy'])} test)")
    if len(finished) > 1:
        second = finished[1]
        gap = 100 * (best["best_val_accuracy"] - second["best_val_accuracy"])
        noise = [spread(r["val_accuracy"][len(r["val_accuracy"]) // 2:]) for r in (best, second)]
        text += f", then η = {second['lr']:g} ({pct(second['best_val_accuracy'])})"
        if None not in noise:
            text += (f"; their {gap:.1f}-point gap is " + ("smaller" if gap < max(noise) else "larger")
                     + f" than the {max(noise):.1f} points their validation accuracy moves over the second half of a run"
                     + (", so the sweep singles out a window of rates more than one value" if gap < max(noise) else ""))
    text += ". Why: the largest rates that are still stable make the most progress in a fixed number of steps"
    slower = [r for r in finished if r["lr"] < best["lr"] and len(r["train_loss"]) > 1]
    falling = [r for r in slower if r["train_loss"][-1] < r["train_loss"][-2]]
    if slower:
        text += ("; the training loss of " + ("every smaller rate" if len(falling) == len(slower) else
                                              f"{len(falling)} of the {len(slower)} smaller rates")
                 + " is still falling in the last epoch (too slow)")
    if diverged:
        text += (", and the loss of " + listing([f"η = {r['lr']:g}" for r in diverged])
                 + " blows up within the first epoch (too high: beyond the stability limit)")
    return text + "."


# --------------------------------------------------------------------------------------------
# 2.5: batch normalisation
# --------------------------------------------------------------------------------------------


def a_2_5_i(rep: Report) -> str:
    return ("With yᵢ = γᵢx̂ᵢ + βᵢ for every sample s of the batch: ∂L/∂γᵢ = Σ_s (∂L/∂y_{s,i}) x̂_{s,i} and "
            "∂L/∂βᵢ = Σ_s ∂L/∂y_{s,i} (sums over the batch, because γᵢ and βᵢ are shared by all samples). "
            f"Derivation, with the input gradient: {derivation('Batch normalisation', 'Batch normalisation')}.")


def a_2_5_ii(rep: Report) -> str:
    text = ("A fully connected layer from 20 to 40 units has 20·40 = 800 weights and 40 biases; batch norm over its "
            "40 outputs adds 40 γ and 40 β: 800 + 40 + 40 + 40 = **920** trainable parameters. The running mean "
            "and variance (2·40 numbers) are statistics, not trained. ")
    s = rep.load("param_count", "param_count.json")
    if s is None:
        return text + not_run("param_count")
    return text + f"The library counts {s['total']} ({rep.link('param_count')})."


def dead_runs(rep: Report) -> list[dict] | None:
    s = rep.load("dead_neurons", "dead_neurons.json")
    return None if s is None else s["runs"]


def most_dead(runs: list[dict]) -> tuple[dict, int, dict] | None:
    """(run, layer index, layer) of the layer with the most dead units after the last epoch."""
    cands = [(r, k, layer) for r in runs for k, layer in enumerate(r["layers"])]
    return max(cands, key=lambda c: c[2]["dead"][-1]) if cands else None


def a_2_5_iii(rep: Report) -> str:
    text = ("The gradient ∂L/∂W_l tells how to change layer l with every other layer held fixed, but an update "
            "changes all layers at once: after it, layer l's inputs come from changed layers below and may have "
            "another mean and scale, so its own step may no longer fit (the interaction enters the change of the "
            "loss at second order in η, through the Hessian's blocks between layers, and compounds with depth). "
            "Batch norm makes what each unit passes on, γx̂ + β with x̂ = (z − μ_B)/σ_B over the batch, "
            "independent of the mean and scale of its pre-activation z: if the weights feeding it change z to "
            "az + c with a > 0, x̂ does not change (for ε → 0). So the distribution that layer l sees is set by "
            "its own γ and β, not by the interplay of every earlier weight, and the gradient computed with the "
            "others held fixed stays a good direction after they all move; it also allows larger rates. The "
            "backward pass shows the same: the gradient reaching z has zero sum over the batch and no component "
            "along x̂ beyond ε terms, i.e. the directions that only shift or rescale z are removed "
            f"({derivation('Batch normalisation', 'Batch normalisation')}). ")
    s = rep.load("batchnorm", "batchnorm.json")
    if s is None:
        return text + not_run("batchnorm")
    runs = {(tuple(r["hidden_dims"]), r["batch_norm"]): r for r in s["runs"] if r["test_accuracy"] is not None}
    gains = [(list(h), 100 * (runs[(h, True)]["test_accuracy"] - r["test_accuracy"])) for (h, bn), r in runs.items()
             if not bn and (h, True) in runs]
    if gains:
        text += (f"Measured ({rep.link('batchnorm')}, lr 0.1, 20 epochs): batch norm changes test accuracy by "
                 + ", ".join(f"{g:+.2f} points for {h}" for h, g in gains) + ". ")
    dead = dead_runs(rep)
    if dead:
        plain = [r for r in dead if not r["batch_norm"] and r["test_accuracy"] is not None]
        worst = most_dead(plain)
        if worst:
            r = worst[0]
            bn = next((x for x in dead if x["batch_norm"] and x["hidden_dims"] == r["hidden_dims"] and x["lr"] == r["lr"]), None)
            if bn and bn["test_accuracy"] is not None:
                text += (f"At the higher rate {r['lr']:.4g}, {r['hidden_dims']} reaches {acc(bn['test_accuracy'])} with "
                         f"batch norm against {acc(r['test_accuracy'])} without ({rep.link('dead_neurons')}).")
    return text.rstrip()


def a_2_5_iv(rep: Report) -> str:
    text = ("A ReLU unit is dead when its pre-activation z = wᵀx + b is ≤ 0 for every input, so it outputs 0 for all "
            "data. Its ReLU derivative is then 0 on every sample, so no gradient reaches its incoming weights w and "
            "bias b (nor flows through it to the layers below): gradient descent never changes them again, and the "
            "unit stays dead unless the layers below change its inputs. It harms training by wasting capacity: the "
            "layer works with fewer units, and if many die the network underfits. Units usually die after a large "
            "step pushes w and b to where z < 0 on all inputs (high rates, large gradients). "
            f"Derivation: {derivation('Dead ReLU units', 'Element-wise activation')}. ")
    s = rep.load("dead_neurons", "dead_neurons.json")
    if s is None:
        return text + not_run("dead_neurons")
    plain = [r for r in s["runs"] if not r["batch_norm"] and r["test_accuracy"] is not None]
    worst = most_dead(plain)
    if not worst or worst[2]["dead"][-1] == 0:
        return text + f"No run without batch norm ended with a dead unit ({rep.link('dead_neurons')})."
    r, k, layer = worst
    ref = next((x for x in plain if x["hidden_dims"] == r["hidden_dims"] and x["lr"] == s["default_lr"]), None)
    return text + (f"Measured ({rep.link('dead_neurons')}): without batch norm at lr {r['lr']:.4g}, "
                   f"{layer['dead'][-1]} of the {layer['width']} units of layer {k + 1} of {r['hidden_dims']} are dead "
                   f"after the last epoch ({max(layer['dead'])} after the worst one), and the run ends at "
                   f"{acc(r['test_accuracy'])} test accuracy"
                   + (f" against {acc(ref['test_accuracy'])} at lr {ref['lr']:g}" if ref else "")
                   + " (the rate also changes the optimisation itself, so not all of the gap is the dead units').")


def a_2_5_v(rep: Report) -> str:
    text = ("Batch norm puts γx̂ + β before the ReLU, with x̂ of mean 0 and variance 1 over every training batch. "
            "Since x̂ takes both signs within every batch (it is not constant), γx̂ + β is positive on part of every "
            "batch unless β is far below zero relative to γ, so the unit keeps receiving a gradient whatever the "
            "weights before it do: a step on those weights cannot push the whole batch below zero, because x̂ is "
            "re-centred on every batch; only β, one parameter per unit, could, by falling far below −γ. ")
    runs = dead_runs(rep)
    if runs is None:
        return text + not_run("dead_neurons")
    normed = [r for r in runs if r["batch_norm"]]
    plain = [r for r in runs if not r["batch_norm"] and r["test_accuracy"] is not None]
    most_bn = max((max(layer["dead"]) for r in normed for layer in r["layers"]), default=None)
    worst = most_dead(plain)
    if most_bn is None or worst is None:
        return text + not_run("dead_neurons")
    r, k, layer = worst
    rates = sorted({x["lr"] for x in normed})
    return text + (f"Measured ({rep.link('dead_neurons')}): without batch norm, up to {layer['dead'][-1]} of "
                   f"{layer['width']} units of layer {k + 1} of {r['hidden_dims']} are dead after the last epoch (lr "
                   f"{r['lr']:.4g}); with batch norm, at the rates {listing([f'{lr:.4g}' for lr in rates])}, "
                   + ("no unit is dead after any epoch of any run." if most_bn == 0
                      else f"at most {most_bn} units of a layer are dead after any epoch."))


def a_2_5_vi(rep: Report) -> str:
    s = rep.load("batchnorm", "batchnorm.json")
    if s is None:
        return not_run("batchnorm")
    runs = {(tuple(r["hidden_dims"]), r["batch_norm"]): r for r in s["runs"] if r["test_accuracy"] is not None}
    sizes = sorted({h for h, _ in runs}, key=len)
    plain = [runs[(h, False)] for h in sizes if (h, False) in runs]
    text = (f"Six runs, 20 epochs at lr 0.1 ({rep.link('batchnorm')}); training accuracy: "
            f"{figure(rep, 'batchnorm/batchnorm_train_accuracy.png')}, validation accuracy: "
            f"{figure(rep, 'batchnorm/batchnorm_val_accuracy.png')}. Test accuracy: "
            + "; ".join(f"{list(h)} {acc(runs[(h, False)]['test_accuracy'])} without and "
                        f"{acc(runs[(h, True)]['test_accuracy'])} with batch norm" for h in sizes
                        if (h, False) in runs and (h, True) in runs) + ". ")
    if len(plain) > 1:
        small, big = plain[0], plain[-1]
        text += (f"The trend with size: training accuracy rises fast with the number of parameters (without batch norm "
                 f"{pct(small['train_accuracy'][-1])} for {small['hidden_dims']} to {pct(big['train_accuracy'][-1])} for "
                 f"{big['hidden_dims']}) while test accuracy rises by only "
                 f"{100 * (big['test_accuracy'] - small['test_accuracy']):.2f} points: a larger network fits the training "
                 "set better, and the gap between final training and validation accuracy goes from "
                 f"{100 * (small['train_accuracy'][-1] - small['val_accuracy'][-1]):.1f} to "
                 f"{100 * (big['train_accuracy'][-1] - big['val_accuracy'][-1]):.1f} points. ")
        v, tr, b = big["val_accuracy"], big["train_accuracy"], big["best_epoch"]
        if b is not None and b < len(v) and v[-1] < v[b - 1] and tr[-1] > tr[b - 1]:
            text += (f"The largest one's validation accuracy peaks at epoch {b} of {len(v)} and then falls while its "
                     "training accuracy keeps rising: overfitting, which testing the best-validation model sidesteps. ")
    pairs = [(runs[(h, False)], runs[(h, True)]) for h in sizes if (h, False) in runs and (h, True) in runs]
    if pairs:
        early = sum(1 for a, b in pairs if b["train_accuracy"][0] > a["train_accuracy"][0])
        better = sum(1 for a, b in pairs if b["test_accuracy"] > a["test_accuracy"])
        text += (f"With batch norm, training accuracy after the first epoch is higher for {early} of {len(pairs)} sizes "
                 f"and test accuracy is higher for {better} of {len(pairs)}.")
    return text.rstrip()


# --------------------------------------------------------------------------------------------
# The questions, in the assignment's order
# --------------------------------------------------------------------------------------------


def _ev(text: str) -> Callable[[Report], str]:
    return lambda rep: text


def _results(*names: str, extra: str = "") -> Callable[[Report], str]:
    return lambda rep: ", ".join(rep.link(n) for n in names) + (f"; {extra}" if extra else "")


MATRIX_CALCULUS = derivation("Matrix-calculus identities", "Matrix-calculus identities")

QUESTIONS: tuple[Question, ...] = (
    Question("Example 1", "the gradient of x·a with respect to x",
             identity("∂(x·a)/∂x = a", "x·a = Σᵢ xᵢaᵢ, so ∂/∂x_k = a_k."),
             _ev(f"{MATRIX_CALCULUS}; {test(IDENT, 'test_dot_product_gradient_is_a')}")),
    Question("Example 2", "the gradient of bᵀXc with respect to X",
             identity("∂(bᵀXc)/∂X = bcᵀ", "bᵀXc = Σᵢⱼ bᵢXᵢⱼcⱼ, so ∂/∂X_kl = b_k c_l."),
             _ev(f"{MATRIX_CALCULUS}; {test(IDENT, 'test_bilinear_form_gradient_is_b_c_transpose')}")),
    Question("Exercise 1", "the gradient of xᵀBx with respect to x",
             identity("∂(xᵀBx)/∂x = (B + Bᵀ)x", "x appears twice, so the product rule gives Bx + Bᵀx (2Bx only when B "
                      "is symmetric)."),
             _ev(f"{MATRIX_CALCULUS}; {test(IDENT, 'test_quadratic_form_gradient_is_B_plus_B_transpose_times_x')}")),
    Question("Example 3", "the derivative of QᵀQ with respect to Q",
             identity("∂(QᵀQ)ᵢⱼ/∂Q_kl = δⱼₗ Q_ki + δᵢₗ Q_kj, a four-index object", "Contracted with an upstream "
                      "gradient G it gives Q(G + Gᵀ)."),
             _ev(f"{MATRIX_CALCULUS}; {test(IDENT, 'test_gram_matrix_derivative_in_kronecker_deltas')}")),
    Question("Exercise 2", "the gradient of tr(VXW) with respect to X",
             identity("∂tr(VXW)/∂X = VᵀWᵀ", "tr(VXW) = Σ V_ia X_ab W_bi, so ∂/∂X_ab = Σᵢ V_ia W_bi."),
             _ev(f"{MATRIX_CALCULUS}; {test(IDENT, 'test_trace_gradient_is_V_transpose_W_transpose')}")),
    Question("1.1 a", "∂L/∂W, ∂L/∂b, ∂L/∂X of the linear module",
             lambda rep: ("For Y = XWᵀ + B (X (S, M), W (N, M), B the row b repeated S times): ∂L/∂W = (∂L/∂Y)ᵀX "
                          "(N, M), ∂L/∂b = 1ᵀ(∂L/∂Y), the column sums (1, N), ∂L/∂X = (∂L/∂Y)W (S, M). Derivation: "
                          f"{derivation('Linear', 'Linear')}."),
             _ev(f"{derivation('Linear', 'Linear')}; `tests/test_gradients.py` (every module against central "
                 "differences and torch autograd)")),
    Question("1.1 b", "∂L/∂X of an element-wise activation",
             lambda rep: ("For Y = h(X) entry by entry the Jacobian is diagonal: ∂L/∂X = ∂L/∂Y ∘ h′(X) (the "
                          f"element-wise product). Derivation: {derivation('Element-wise activation', 'Element-wise activation')}."),
             _ev(f"{derivation('Element-wise activation', 'Element-wise activation')}; `tests/test_gradients.py`")),
    Question("1.1 c", "softmax with mean cross-entropy: the gradient as α·M",
             lambda rep: ("∂L/∂X = (1/S)(Y − T): α = 1/S and M = Y − T, with Y the softmax outputs, T the one-hot "
                          "targets and S the batch size. Derivation: "
                          f"{derivation('Fused softmax + cross-entropy', 'Fused softmax + cross-entropy')}."),
             _ev(f"{derivation('Softmax and cross-entropy', 'Softmax and cross-entropy')}; "
                 f"{test(IDENT, 'test_softmax_cross_entropy_gradient_is_Y_minus_T_over_S')}")),
    Question("1.1 d i", "what a residual connection requires of the widths N₁ and N₂", a_1_1_d_i,
             _ev(f"{derivation('Residual connection', 'Residual connection')}; `Residual` in arrayml/modules/containers.py")),
    Question("1.1 d ii", "how the residual connection changes ∂L/∂X", a_1_1_d_ii,
             _ev(f"{derivation('Residual connection', 'Residual connection')}; "
                 f"{test(IDENT, 'test_residual_backward_adds_the_identity_path')}")),
    Question("1.1 d iii", "why residual connections keep a deep stack trainable", a_1_1_d_iii,
             _results("residual", extra="`examples/tests/test_experiments_light.py::test_residual_script_runs_on_numpy_and_strict_and_shows_the_effect`")),
    Question("1.2", "the NumPy MLP: test accuracy and loss curve", a_1_2,
             _results("default_mlp", extra="`arrayml.compat` (`tests/test_compat.py`); "
                      "`examples/tests/test_cli.py::test_default_experiment_on_the_shared_cifar10_copy`")),
    Question("2.1", "the same MLP in PyTorch, optionally with batch norm", a_2_1,
             _results("default_mlp", extra="`examples/torch_reference.py`; "
                      "`examples/tests/test_cli.py::test_torch_reference_matches_arrayml_step_by_step_at_first`")),
    Question("2.2 i", "every Hessian eigenvalue is positive at a strict minimum", a_2_2_i, _ev("")),
    Question("2.2 ii", "why saddles outnumber minima exponentially", a_2_2_ii,
             _results("saddle", extra="`examples/tests/test_experiments_light.py::test_saddle_script_growth_shrink_and_minima_fractions`")),
    Question("2.2 iii", "gradient descent near a saddle", a_2_2_iii,
             _results("saddle", extra="`examples/tests/test_experiments_light.py::test_saddle_gradient_descent_on_strict_matches_numpy`")),
    Question("2.3 i", "when to use accuracy, precision and recall", a_2_3_i, _results("fbeta")),
    Question("2.3 ii", "the multi-class F-beta score for β = 0.1, 1, 10", a_2_3_ii,
             _results("fbeta", extra="`arrayml/metrics.py`, `tests/test_metrics.py::test_precision_recall_fbeta_by_hand`")),
    Question("2.4 i", "why the learning rate matters most; too high, too low", a_2_4_i, _results("lr_sweep")),
    Question("2.4 ii", "a learning-rate schedule, and why", a_2_4_ii,
             _results("schedules", extra="`arrayml/schedules.py`, `tests/test_training.py::test_schedules_have_their_shapes`")),
    Question("2.4 iii", "9 rates from 1e-6 to 100: the best and why", a_2_4_iii,
             _results("lr_sweep", extra=f"`{TRAINING_TESTS}::test_lr_sweep_records_divergence_instead_of_crashing`")),
    Question("2.5 i", "∂L/∂γ and ∂L/∂β of batch norm", a_2_5_i,
             _ev(f"{derivation('Batch normalisation', 'Batch normalisation')}; `tests/test_gradients.py`")),
    Question("2.5 ii", "trainable parameters of Linear(20, 40) with batch norm", a_2_5_ii,
             _results("param_count", extra="`tests/test_core.py::test_parameter_count_of_linear_plus_batchnorm_is_920`")),
    Question("2.5 iii", "how batch norm eases simultaneous updates", a_2_5_iii, _results("batchnorm", "dead_neurons")),
    Question("2.5 iv", "what a dead neuron is and how it harms training", a_2_5_iv,
             _results("dead_neurons", extra=f"`{TRAINING_TESTS}::test_a_dead_unit_gets_no_gradient_so_its_incoming_weights_do_not_move`")),
    Question("2.5 v", "how batch norm prevents dead neurons", a_2_5_v, _results("dead_neurons")),
    Question("2.5 vi", "[128], [256, 128], [512, 256, 128] for 20 epochs: the behaviour and trend", a_2_5_vi,
             _results("batchnorm", extra=f"`{TRAINING_TESTS}::test_batchnorm`")),
)


def question_map(rep: Report) -> None:
    """The table at the top of docs/results.md: one row per question, each with its answer and
    evidence."""
    w = rep.w
    w("## The assignment, question by question\n")
    w("One row per numbered question and sub-question of the assignment (the team's index of them is "
      "`assignment/QUESTIONS.md` in the shared folder beside the data), each with its written answer in "
      "[answers.md](answers.md) and the run, figure, table, test or derivation that backs it. Derivations are in "
      "[docs/derivations.md](derivations.md), each with the test that checks it.\n")
    w("| question | asks | answer and evidence |")
    w("|---|---|---|")
    for q in QUESTIONS:
        evidence = q.evidence(rep)
        w(f"| {q.number} | {q.asks} | {q.link()}" + (f"; {evidence}" if evidence else " (a proof)") + " |")
    w("")


def build_answers(rep: Report) -> None:
    """docs/answers.md: every question with its answer."""
    w = rep.w
    w("# The assignment's questions, answered\n")
    w("This page is generated by `python examples/experiments/make_report.py` with [results.md](results.md): every "
      "number below is read from the JSON files under `results/` when the page is written, and each answer links "
      "the section of the results that measured it. The map of all questions is at the top of "
      "[results.md](results.md#the-assignment-question-by-question).\n")
    for q in QUESTIONS:
        w(f"## {q.heading}\n")
        w(f"_{q.asks[0].upper() + q.asks[1:]}._\n")
        w(q.answer(rep) + "\n")
        evidence = q.evidence(rep)
        if evidence:
            w(f"_Evidence:_ {evidence}.\n")
