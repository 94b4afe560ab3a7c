"""The report generator (examples/experiments/make_report.py) on small result sets written here:
it must not crash on a missing experiment, a missing run or a diverged one, must say so, and its
computed conclusions must follow the data (flip the data, the sentence flips)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app_scripts import EXPERIMENTS, ROOT, load_script
from arrayml_app.experiments import REGISTRY, run_order


@pytest.fixture(scope="module")
def report():
    return load_script(EXPERIMENTS / "make_report.py")


def put(root: Path, rel: str, obj) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def history(vals: list[float], train: list[float]) -> dict:
    return {"epochs": [{"epoch": i + 1, "val_accuracy": v, "train_accuracy": t, "train_loss": 2 - t}
                       for i, (v, t) in enumerate(zip(vals, train))],
            "steps": {"loss": [2.3] * (10 * len(vals)), "accuracy": [], "lr": []}}


def default_mlp(root: Path) -> None:
    run = {"implementation": "arrayml", "backend": "numpy", "activation": "relu", "test_accuracy": 0.40,
           "best_epoch": 4, "best_val_accuracy": 0.41, "seconds": 3.0, "seconds_per_epoch": 0.7,
           "first_step_losses": [2.30, 2.20]}
    put(root, "default_mlp/summary.json", {"runs": {
        "arrayml-relu": run,
        "torch-reference-relu": {**run, "implementation": "torch.nn reference", "backend": "torch", "test_accuracy": 0.42,
                                 "first_step_losses": [2.30, 2.21]},
        "arrayml-elu": {**run, "activation": "elu", "test_accuracy": None, "best_epoch": None, "best_val_accuracy": None},
    }, "data": {"path": "/nowhere/cifar10_uint8.npz", "sha256": "ab" * 32, "sizes": {"train": 900, "val": 100, "test": 200}}})
    put(root, "default_mlp/arrayml-relu/results.json", {
        "config": {"hidden_dims": [16], "epochs": 4, "lr": 0.05, "batch_size": 32, "seed": 1, "momentum": 0.0,
                   "val_size": 100, "dtype": "float32", "log_every": 5},
        "backend": "numpy", "device": "cpu", "dtype": "float32",
        "history": history([0.30, 0.35, 0.41, 0.38], [0.3, 0.4, 0.5, 0.6]),
        "environment": {"numpy": "2.x", "platform": "test", "python": "3", "arrayml": "0", "date": "2000-01-01", "cpu_count": 3},
        "test": {"classes": ["a", "b", "c", "d"]},
    })


def lr_sweep(root: Path) -> None:
    """No run at lr 0.1 (the default rate need not be in the sweep), one diverged run."""
    def row(lr, best, diverged=None):
        return {"lr": lr, "diverged": diverged, "best_val_accuracy": best, "best_epoch": 2 if best else None,
                "test_accuracy": best, "train_loss": [2.0, 1.5], "val_accuracy": [best or 0.1, best or 0.1],
                "steps_per_epoch": 28.0, "seconds": 1.0}
    put(root, "lr_sweep/lr_sweep.json", {"runs": [
        row(0.003, 0.20), row(0.03, 0.31), row(0.3, 0.33),
        row(3.0, None, {"epoch": 1, "step": 7, "loss": "nan"}),
    ]})


def schedules(root: Path, constant_best: bool) -> None:
    def run(acc, loss, vals):
        return {"test_accuracy": acc, "best_val_accuracy": max(vals), "best_epoch": vals.index(max(vals)) + 1,
                "final_train_loss": loss, "val_accuracy": vals, "train_loss": [2.0, loss], "seconds": 1.0}
    runs = {"constant": run(0.50 if constant_best else 0.40, 1.0, [0.30, 0.40, 0.35, 0.45]),
            "step": run(0.45, 1.1 if constant_best else 0.9, [0.30, 0.32, 0.42, 0.43]),
            "cosine": run(0.46, 1.2 if constant_best else 0.8, [0.30, 0.40, 0.41, 0.41])}
    put(root, "schedules/schedules.json", {
        "schedules": {"constant": {"name": "constant", "lr": 0.05}, "step": {"name": "step", "lr": 0.05, "step_size": 2.0, "gamma": 0.1},
                      "cosine": {"name": "cosine", "lr": 0.05, "epochs": 4, "min_lr": 0.0}},
        "runs": runs})


def batchnorm(root: Path) -> None:
    """[16] without and with batch norm; [32, 16] only without (its batch-norm run missing); a
    diverged run."""
    def run(hidden, bn, acc, vals, train):
        return {"name": "x", "hidden_dims": hidden, "batch_norm": bn, "parameters": 100, "test_accuracy": acc,
                "best_val_accuracy": max(vals) if acc else None, "best_epoch": vals.index(max(vals)) + 1 if acc else None,
                "train_accuracy": train, "val_accuracy": vals, "train_loss": [], "diverged": None if acc else {"epoch": 1},
                "seconds": 1.0, "seconds_per_epoch": 0.5}
    put(root, "batchnorm/batchnorm.json", {"runs": [
        run([16], False, 0.40, [0.3, 0.4, 0.35, 0.38], [0.3, 0.4, 0.5, 0.6]),
        run([16], True, 0.44, [0.3, 0.42, 0.43, 0.43], [0.3, 0.45, 0.55, 0.62]),
        run([32, 16], False, 0.41, [0.3, 0.45, 0.40, 0.39], [0.3, 0.5, 0.7, 0.9]),
        run([64, 32, 16], True, None, [], []),
    ]})


def residual(root: Path, prediction: float) -> None:
    """ReLU only: no tanh run (a missing activation is said, not a KeyError)."""
    put(root, "residual/residual.json", {
        "settings": {"depth": 8, "block": "Linear -> ReLU -> Linear", "width": 4, "batch": 8},
        "input_grad_ratio_first_to_last": {"kaiming": {"relu": {"plain": 30.0, "residual": 60.0}},
                                           "scaled": {"relu": {"plain": 1e-5, "residual": 1.4}}},
        "relu_mean_field_prediction": {"kaiming": {"plain": prediction, "residual": 70.0}, "scaled": {"residual": 1.5}},
    })


def dead_neurons(root: Path, bn_dead: int) -> None:
    def layer(dead, width=8, revived=0, frozen=(3, 3)):
        return {"width": width, "dead": dead, "dead_fraction": [d / width for d in dead], "ever_dead": max(dead),
                "revived": revived, "revivals": revived, "revivals_frozen": revived, "dead_unit_epochs": frozen[1], "dead_unit_epochs_frozen": frozen[0],
                "alive_unit_epochs": 20, "alive_unit_epochs_frozen": 0}

    def run(hidden, bn, lr, layers, acc, diverged=None):
        return {"name": "x", "hidden_dims": hidden, "batch_norm": bn, "lr": lr, "epochs": 2, "layers": layers,
                "sgd": {"momentum": 0.0, "weight_decay": 0.0},
                "val_accuracy": [0.3, 0.4], "train_loss": [2, 1], "best_val_accuracy": 0.4, "best_epoch": 2,
                "test_accuracy": acc, "diverged": diverged, "seconds": 1.0}
    put(root, "dead_neurons/dead_neurons.json", {
        "grid": [0.1, 0.2, 0.4], "default_lr": 0.1, "epochs": 2,
        "search": [{"hidden_dims": [8, 8], "rates_tried": [0.1, 0.2, 0.4], "high_lr": 0.2, "dead_at_end": [0, 5, 0],
                    "diverged": [False, False, True]}],
        "runs": [
            run([8, 8], False, 0.1, [layer([0, 0, 0]), layer([0, 0, 0])], 0.40),
            run([8, 8], False, 0.2, [layer([0, 0, 0]), layer([0, 4, 5], revived=1)], 0.30),
            run([8, 8], False, 0.4, [layer([0, 0]), layer([0, 2])], 0.10, {"epoch": 2, "step": 3, "loss": "inf"}),
            run([8, 8], True, 0.1, [layer([0, 0, 0]), layer([0, 0, 0])], 0.45),
            run([8, 8], True, 0.2, [layer([0, 0, 0]), layer([0, bn_dead, bn_dead])], 0.44),
        ]})


def build(report, root: Path) -> str:
    return report.build(root, root / "docs" / "results.md")


def test_registry_is_the_one_list_of_experiments_and_every_entry_has_a_script_and_a_section(report):
    """Each experiment's section is written beside the experiment: ``report`` in its script."""
    names = [e.name for e in REGISTRY]
    assert len(set(names)) == len(names)
    for e in REGISTRY:
        assert (EXPERIMENTS / e.script).is_file(), e.script
        module = report.script(e.name)
        assert callable(module.main) and report.section(e) is module.report, e.name
    assert "def report(" not in (EXPERIMENTS / "make_report.py").read_text()  # no section is written there
    order = [e.name for e in run_order()]
    assert order.index("default_mlp") < order.index("fbeta")  # fbeta reads default_mlp's model
    assert all(not e.training for e in run_order()[:3]) and sorted(order) == sorted(names)
    run_all = (EXPERIMENTS / "run_all.py").read_text()
    assert "REGISTRY" in run_all and "LIGHT =" not in run_all and "TRAINING =" not in run_all


def test_nothing_run_gives_a_report_of_not_run_sections(report, tmp_path):
    text = build(report, tmp_path)
    assert text.count("_Not run: ") == len(REGISTRY)
    assert "## The assignment, question by question" in text


def test_missing_and_diverged_runs_are_named_and_nothing_crashes(report, tmp_path):
    default_mlp(tmp_path)
    lr_sweep(tmp_path)
    schedules(tmp_path, constant_best=False)
    batchnorm(tmp_path)
    residual(tmp_path, prediction=31.0)
    dead_neurons(tmp_path, bn_dead=0)
    text = build(report, tmp_path)
    answers = report.build_answers(tmp_path, tmp_path / "docs" / "answers.md")  # does not crash either
    assert "[16] 40.00% without and 44.00% with batch norm" in answers and "[32, 16] 41.00%" not in answers
    assert "_(The saddle experiment has not been run" in answers
    # experiments not run
    for name in ("fbeta", "saddle", "param_count"):
        assert f"_Not run: `results/{name}/" in text
    # a diverged run in a table and in the prose, no lr 0.1 anywhere in the sweep
    assert "| 3 | — | diverged | diverged in epoch 1 (step 7) |" in text
    assert "The larger rates diverge: lr 3 in epoch 1 (step 7, loss nan)" in text
    assert "**Best rate: 0.3**" in text and "then 0.03" in text
    assert "| arrayml-elu | arrayml | numpy | elu | **diverged** |" in text
    # numbers read from the results, not typed in: steps, peak rate, chance level, cores
    assert "Over the 40 steps of the run" in text
    assert "peak lr 0.05" in text and "peak lr 0.1" not in text
    assert "chance is 25%" in text and "with 3 CPU cores" in text
    assert "3510" not in text and "50.3%" not in text
    # the label matches the computation: the second half of a 4-epoch run is epochs 3-4
    assert "over epochs 3–4" in text and "last 10 epochs" not in text
    # a size without its batch-norm run is left out of the comparison; a diverged one is named
    assert "for 1 of 1 sizes" in text and "Diverged: [64, 32, 16] with batch norm" in text
    # no tanh run: said, not a KeyError
    assert "(ReLU) and not run (tanh)" in text
    assert "within a factor of 1.17" in text and "the same order of magnitude" in text
    # dead neurons: numbers from the file
    assert "high rate **0.2**" in text and "0.4: diverged" in text
    assert "the most after the last epoch is 5 of the 8 units (62%) of layer 2 of [8, 8] at lr 0.2." in text
    assert "no unit is dead after any epoch" in text
    assert "1 unit came back after being dead, none of them in a first hidden layer" in text
    assert "its own incoming weights and bias had not changed during that epoch once: those times it came back because" in text


def test_conclusions_follow_the_data(report, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, constant_best, prediction, bn_dead in ((a, False, 31.0, 0), (b, True, 3000.0, 3)):
        default_mlp(root)
        schedules(root, constant_best)
        residual(root, prediction)
        dead_neurons(root, bn_dead)
    ta, tb = build(report, a), build(report, b)
    assert "Every schedule that lowers the rate beats the constant rate here (step and cosine)" in ta
    assert "every decayed schedule ends below the constant rate" in ta
    assert "No schedule that lowers the rate beats the constant rate here (step and cosine do not)" in tb
    assert "no decayed schedule ends below the constant rate" in tb
    assert "Every schedule" not in tb
    assert "the same order of magnitude" in ta
    assert "within a factor of 100.00" in tb and "do not agree in order of magnitude" in tb
    assert "no unit is dead after any epoch" in ta
    assert "at most 3 units of a layer are dead after any epoch" in tb


#: Every numbered question and sub-question of the assignment, in its order: the team's index
#: (assignment/QUESTIONS.md in the shared folder) transcribed, so that this test runs without it.
NUMBERS = ["Example 1", "Example 2", "Exercise 1", "Example 3", "Exercise 2",
           "1.1 a", "1.1 b", "1.1 c", "1.1 d i", "1.1 d ii", "1.1 d iii", "1.2",
           "2.1", "2.2 i", "2.2 ii", "2.2 iii", "2.3 i", "2.3 ii", "2.4 i", "2.4 ii", "2.4 iii",
           "2.5 i", "2.5 ii", "2.5 iii", "2.5 iv", "2.5 v", "2.5 vi"]
INDEX = ROOT.parent / "shared" / "assignment" / "QUESTIONS.md"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings of `markdown`."""
    return {re.sub(r"[^\w\- ]", "", t.lower()).replace(" ", "-") for t in re.findall(r"^#+ (.+)$", markdown, re.M)}


def map_rows(text: str) -> list[list[str]]:
    table = text.split("## The assignment, question by question")[1].split("**Data.**")[0]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| question")]


def index_numbers(index: str) -> list[str]:
    """The numbers of the questions in the team's index: the label of each bullet, with its
    sub-questions (i), (ii), ... when it has them."""
    numbers = []
    index = re.sub(r"\n {2,}", " ", index)  # a bullet's continuation lines onto its first
    for label, rest in re.findall(r"^- (.+?) — (.*)$", index, flags=re.M):
        label = re.sub(r"\s*\(\d+ pts\)", "", label).strip()
        parts = re.findall(r"\((i|ii|iii|iv|v|vi)\)", rest)
        numbers += [f"{label} {p}" for p in parts] if parts else [label]
    return numbers


def test_the_question_map_has_one_row_per_question_and_points_at_what_exists(report, tmp_path):
    text = build(report, tmp_path)
    answers = report.build_answers(tmp_path, tmp_path / "docs" / "answers.md")
    rows = map_rows(text)
    assert [row[0] for row in rows] == NUMBERS  # each row starts with its number, in order, none twice
    assert not any("–" in row[0] or "-" in row[0] for row in rows)  # no ranges
    table = "\n".join(" | ".join(row) for row in rows)
    tests = set(re.findall(r"`(test_\w+)`", table)) | set(re.findall(r"::(test_\w+)`", table))
    sources = "\n".join(p.read_text() for folder in ("tests", "examples/tests") for p in (ROOT / folder).glob("test_*.py"))
    for name in tests:
        assert f"def {name}(" in sources, name
    for path in re.findall(r"`((?:tests|examples|arrayml)/[\w/]+\.py)", table):
        assert (ROOT / path).is_file(), path
    derivations = anchors((ROOT / "docs" / "derivations.md").read_text())
    for anchor in re.findall(r"derivations\.md#([\w-]+)", table + answers):
        assert anchor in derivations, anchor
    for anchor in re.findall(r"\]\(#([\w-]+)\)", table):
        assert anchor in anchors(text), anchor
    answer_anchors = re.findall(r"\]\(answers\.md#([\w-]+)\)", table)
    assert len(answer_anchors) == len(NUMBERS) and set(answer_anchors) <= anchors(answers)
    for anchor in re.findall(r"\]\(results\.md#([\w-]+)\)", answers):
        assert anchor in anchors(text), anchor


def test_the_map_numbers_are_those_of_the_teams_index():
    if not INDEX.is_file():
        pytest.skip(f"the team's index of the questions is not on this machine ({INDEX})")
    assert index_numbers(INDEX.read_text()) == NUMBERS


def test_answers_quote_the_results_and_say_what_was_not_run(report, tmp_path):
    empty = report.build_answers(tmp_path / "none", tmp_path / "none" / "docs" / "answers.md")
    for q in ("2.2 ii", "2.4 i", "2.5 iv", "2.5 vi"):
        section = empty.split(f"## {q}\n")[1].split("\n## ")[0]
        assert "has not been run" in section, q
    a, b = tmp_path / "a", tmp_path / "b"
    for root, bn_dead in ((a, 0), (b, 3)):
        default_mlp(root)
        lr_sweep(root)
        dead_neurons(root, bn_dead)
    ta = report.build_answers(a, a / "docs" / "answers.md")
    tb = report.build_answers(b, b / "docs" / "answers.md")
    # 2.4 i: the sweep's extreme rates, read from lr_sweep.json (rates 0.003 ... 3 here)
    assert "at η = 3 the run diverged in epoch 1 at step 7" in ta
    assert "at η = 0.003 the training loss only went from 2.00 (epoch 1) to 1.50 (epoch 2)" in ta
    assert "(chance: 25%)" in ta and "η = 100" not in ta and "9.58%" not in ta
    # 2.5 iv and v: the dead units, with and without batch norm, follow the data
    assert "5 of the 8 units of layer 2 of [8, 8] are dead after the last epoch" in ta
    assert "no unit is dead after any epoch of any run" in ta
    assert "at most 3 units of a layer are dead after any epoch" in tb and "no unit is dead" not in tb.split("## 2.5 v\n")[1]


def test_the_committed_report_is_what_the_committed_results_give(report, monkeypatch):
    """docs/results.md must be regenerated whenever results/ or the generator change."""
    monkeypatch.chdir(ROOT)  # the report quotes the data README by its path from here
    summary = ROOT / "results" / "default_mlp" / "summary.json"
    if not summary.is_file():
        pytest.skip("no committed results")
    readme = Path(json.loads(summary.read_text())["data"]["path"]).parent / "README.md"
    if not readme.is_file():
        pytest.skip(f"the data README that the report quotes ({readme}) is not on this machine")
    assert report.build(Path("results"), Path("docs") / "results.md") == (ROOT / "docs" / "results.md").read_text()


def test_the_committed_answers_are_what_the_committed_results_give(report):
    """docs/answers.md quotes results/: it must be regenerated whenever they or the generator change."""
    if not (ROOT / "results" / "default_mlp" / "summary.json").is_file():
        pytest.skip("no committed results")
    answers = ROOT / "docs" / "answers.md"
    assert report.build_answers(ROOT / "results", answers) == answers.read_text()


def test_the_readmes_cnn_row_is_the_committed_cnn_run():
    """The README's headline row of the CNN quotes the committed run: its test accuracy, its
    seconds of training and the train.py flags that differ from the defaults."""
    path = ROOT / "results" / "cnn" / "cnn.json"
    if not path.is_file():
        pytest.skip("no committed CNN results")
    s = json.loads(path.read_text())
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| past MLPs: a CNN"))
    assert f"**{100 * s['cnn']['test_accuracy']:.2f}%**" in row
    assert f"**{s['cnn']['train_seconds']:.0f} s of training**" in row
    assert f"{s['cnn']['parameters']:,} parameters" in row
    flags = re.search(r"`\.\.\. (.*)`", row).group(1)
    for part in flags.split(" --"):
        assert part.strip("-") in s["train_command"], part  # every flag of the row is the run's
    assert f"--epochs {s['settings']['epochs']}" in row
