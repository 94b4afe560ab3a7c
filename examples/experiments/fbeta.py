#!/usr/bin/env python
"""Experiment 2: per-class precision, recall and F-beta (β = 0.1, 1, 10) of the default model,
the confusion matrix as a figure, and which classes have high or low precision and recall.

    python examples/experiments/fbeta.py --data-dir ../shared/data/cifar10

Reads results/default_mlp/arrayml-relu/results.json (metrics computed on the device by
arrayml.metrics during the run); trains that model first if the file is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

from arrayml_app.experiments import RESULTS, Stopwatch, base_config, command_line, out_dir, parser, save_json
from arrayml_app.figures import new_figure, plot_confusion, save_figure
from arrayml_app.report import Report, acc, listing
from arrayml_app.run import run


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS / "default_mlp" / "arrayml-relu" / "results.json"),
                   help="results.json of the default model (trained if missing)")
    args = p.parse_args(argv)
    out = out_dir(args, "fbeta")
    clock = Stopwatch()
    path = Path(args.results)
    if path.is_file():
        r = json.loads(path.read_text())
    else:
        r = run(base_config(args, out=str(path.parent)))
    test = r["test"]
    classes = test["classes"]
    betas = list(test["fbeta"])
    rows = []
    for i, name in enumerate(classes):
        row = {"class": name, "precision": test["precision"][i], "recall": test["recall"][i]}
        row.update({f"f{b}": test["fbeta"][b][i] for b in betas})
        rows.append(row)
    by_p = sorted(rows, key=lambda row: row["precision"])
    by_r = sorted(rows, key=lambda row: row["recall"])
    summary = {
        "experiment": "fbeta", "command": command_line("fbeta.py", argv), "source": str(path),
        "test_accuracy": test["accuracy"], "betas": betas, "per_class": rows, "macro": test["macro"],
        "highest_precision": [row["class"] for row in by_p[::-1][:3]],
        "lowest_precision": [row["class"] for row in by_p[:3]],
        "highest_recall": [row["class"] for row in by_r[::-1][:3]],
        "lowest_recall": [row["class"] for row in by_r[:3]],
        "confusion_matrix": test["confusion_matrix"], "classes": classes,
    }
    save_figure(plot_confusion(test["confusion_matrix"], classes,
                               title=f"default MLP, test set: accuracy {test['accuracy']:.4f}"),
                out / "confusion_matrix.png")
    plot_scores(rows, betas, out / "fbeta_per_class.png")
    summary["seconds"] = clock.seconds()
    save_json(summary, out / "fbeta.json")
    print(f"{'class':<12}{'precision':>10}{'recall':>8}" + "".join(f"{'F' + b:>8}" for b in betas))
    for row in rows:
        print(f"{row['class']:<12}{row['precision']:>10.3f}{row['recall']:>8.3f}" + "".join(f"{row['f' + b]:>8.3f}" for b in betas))
    return summary


def plot_scores(rows: list[dict], betas: list[str], path: Path) -> None:
    import numpy as np

    names = [row["class"] for row in rows]
    keys = ["precision", "recall", *[f"f{b}" for b in betas]]
    labels = ["precision", "recall", *[f"F(β={b})" for b in betas]]
    x = np.arange(len(names))
    width = 0.8 / len(keys)
    fig, ax = new_figure(size=(12, 4.2))
    for k, (key, label) in enumerate(zip(keys, labels)):
        ax.bar(x + (k - (len(keys) - 1) / 2) * width, [row[key] for row in rows], width, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylabel="score on the test set", ylim=(0, 1), title="per-class precision, recall and F-beta of the default MLP")
    ax.legend(ncol=5, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    w = rep.w
    betas = s["betas"]
    w(f"The default arrayml ReLU model of {rep.ref('default_mlp')} (test accuracy {acc(s['test_accuracy'])}) on the "
      f"{sum(map(sum, s['confusion_matrix']))} test images. Metrics are computed on the device by `arrayml.metrics` from "
      "the confusion matrix and read back once. F-beta weighs recall β times as much as precision: a small β gives "
      "almost the precision, a large one almost the recall, β = 1 their harmonic mean.\n")
    rows = [(row["class"], *(f"{row[k]:.3f}" for k in ("precision", "recall", *(f"f{b}" for b in betas))))
            for row in [*s["per_class"], {"class": "**macro average**", **s["macro"]}]]
    rep.table(("class", "precision", "recall", *(f"F(β={b})" for b in betas)), rows)
    rep.fig("fbeta/confusion_matrix.png", "confusion matrix of the default model on the test set")
    rep.fig("fbeta/fbeta_per_class.png", "per-class precision, recall and F-beta")
    cm, classes = s["confusion_matrix"], s["classes"]
    pairs = sorted(((cm[i][j], classes[i], classes[j]) for i in range(len(cm)) for j in range(len(cm)) if i != j), reverse=True)[:3]
    text = (f"**Which classes.** Highest precision: {', '.join(s['highest_precision'])}; lowest precision: "
            f"{', '.join(s['lowest_precision'])}. Highest recall: {', '.join(s['highest_recall'])}; lowest recall: "
            f"{', '.join(s['lowest_recall'])}. The largest confusions are "
            + "; ".join(f"{n} {a} images predicted as {b}" for n, a, b in pairs) + ". ")
    lo, hi = min(betas, key=float), max(betas, key=float)
    rows = s["per_class"]
    over = max(rows, key=lambda row: row["recall"] - row["precision"])
    under = max(rows, key=lambda row: row["precision"] - row["recall"])
    if over["recall"] > over["precision"]:
        text += (f"**{over['class']}** has the largest excess of recall over precision ({over['recall']:.3f} against "
                 f"{over['precision']:.3f}): the model predicts it more often than it occurs, so F({hi}) "
                 f"({over['f' + hi]:.3f}) rates it higher than F({lo}) ({over['f' + lo]:.3f}). ")
    if under["precision"] > under["recall"]:
        text += (f"**{under['class']}** has the largest excess of precision over recall ({under['precision']:.3f} "
                 f"against {under['recall']:.3f}): it is predicted rarely, and then often rightly, so F({lo}) "
                 f"({under['f' + lo]:.3f}) rates it higher than F({hi}) ({under['f' + hi]:.3f}). ")
    text += "Which β to report depends on which mistake costs more: β < 1 when false alarms do, β > 1 when misses do.\n"
    w(text)


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def worst_detector(rep: Report) -> str:
    s = rep.need("fbeta")
    worst = min(s["per_class"], key=lambda row: row["recall"])
    return (f"In this project ({rep.link('fbeta')}) the default model's accuracy is {acc(s['test_accuracy'])}, yet as "
            f"a detector of **{worst['class']}** it has precision {worst['precision']:.3f} and recall "
            f"{worst['recall']:.3f}: it finds only {100 * worst['recall']:.1f}% of the {worst['class']} images, which "
            "accuracy alone does not show.")


def scores(rep: Report) -> str:
    s = rep.need("fbeta")
    m = s["macro"]
    return (f"On the test set ({rep.link('fbeta')}): highest precision {listing(s['highest_precision'])}; highest recall "
            f"{listing(s['highest_recall'])}; lowest recall {listing(s['lowest_recall'])}. Macro averages: "
            + ", ".join(f"F_{b} = {m['f' + b]:.3f}" for b in s["betas"])
            + f" (precision {m['precision']:.3f}, recall {m['recall']:.3f}): a small β gives about the precision, a "
            "large one about the recall. The per-class table is in the results.")


if __name__ == "__main__":
    main()
