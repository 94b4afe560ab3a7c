"""examples/train.py and examples/torch_reference.py: flags, outputs, one-line errors, and the
headline experiment on the team's CIFAR-10 copy when it is present."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cifar_fixtures import make_cache

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "examples" / "train.py"
TORCH_REF = ROOT / "examples" / "torch_reference.py"
SHARED = ROOT.parent / "shared" / "data" / "cifar10"
SMALL = ["--hidden-dims", "32", "--batch-size", "50", "--val-size", "100", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    make_cache(folder, n_train=700, n_test=150)
    return folder


def run(script, *args, cwd=None):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.parametrize("args,message", [
    (["--lr", "-0.1"], "--lr must be a positive number, got -0.1"),
    (["--xp", "jax"], "argument --xp: invalid choice: 'jax'"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--hidden-dims", "128", "-4"], "--hidden-dims must be positive sizes"),
    (["--activation", "swish"], "argument --activation: invalid choice"),
    (["--batch-size", "lots"], "argument --batch-size: invalid int value: 'lots'"),
    (["--xp", "torch", "--device", "cuda"], "sees no CUDA device"),
    (["--xp", "cupy"], "backend 'cupy' is not installed"),
    (["--xp", "array-api-strict", "--device", "gpu0"], "array-api-strict has no device 'gpu0'"),
])
def test_bad_flags_give_one_line_errors(data_dir, tmp_path, args, message):
    if "cupy" in args and importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed here")
    torch = pytest.importorskip("torch")
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run(TRAIN, "--data-dir", data_dir, "--out", tmp_path / "o", *SMALL, *args)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "UserWarning" not in line and "load_cifar10" not in line]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


def test_missing_data_is_a_one_line_error_saying_where_it_looked(tmp_path):
    proc = subprocess.run([sys.executable, str(TRAIN), "--data-dir", str(tmp_path / "none"), *SMALL],
                          capture_output=True, text=True, timeout=120,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "ARRAYML_OFFLINE": "1"})
    assert proc.returncode == 2
    assert "CIFAR-10 not found: looked for cifar10_uint8.npz in" in proc.stderr
    assert str(tmp_path / "none" / "cifar10_uint8.npz") in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_train_writes_results_figures_and_prints_progress(data_dir, tmp_path):
    out = tmp_path / "run"
    proc = run(TRAIN, "--data-dir", data_dir, "--out", out, *[a for a in SMALL if a != "--quiet"], "--schedule", "cosine")
    assert proc.returncode == 0, proc.stderr
    assert "epoch   1/2" in proc.stdout and "test accuracy" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["schedule"] == "cosine" and results["schedule"]["name"] == "cosine"
    assert results["backend"] == "numpy" and results["device"] == "cpu" and results["dtype"] == "float32"
    assert len(results["history"]["epochs"]) == 2 and len(results["history"]["steps"]["loss"]) == 2 * (600 // 50)
    test = results["test"]
    assert test["n"] == 150 and len(test["confusion_matrix"]) == 10
    assert sum(map(sum, test["confusion_matrix"])) == 150
    assert set(test["fbeta"]) == {"0.1", "1", "10"}
    assert results["timing"]["wall_seconds"] > 0 and results["data"]["sizes"] == {"train": 600, "val": 100, "test": 150}
    for png in ("loss_curve.png", "confusion_matrix.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quiet_prints_nothing_and_default_out_is_named_after_the_run(data_dir, tmp_path):
    proc = run(TRAIN, "--data-dir", data_dir, *SMALL, "--xp", "array-api-strict", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    outs = list((tmp_path / "results").iterdir())
    assert [p.name for p in outs] == ["mlp-32-relu-array-api-strict-lr0.1-e2-s42"]


@pytest.mark.parametrize("extra", [[], ["--batch-norm"]], ids=["plain", "batchnorm"])
def test_torch_reference_matches_arrayml_step_by_step_at_first(data_dir, tmp_path, extra):
    pytest.importorskip("torch")
    a = run(TRAIN, "--data-dir", data_dir, "--out", tmp_path / "a", *SMALL, "--xp", "torch", *extra)
    b = run(TORCH_REF, "--data-dir", data_dir, "--out", tmp_path / "b", *SMALL, *extra)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    rb = json.loads((tmp_path / "b" / "results.json").read_text())
    assert rb["implementation"] == "torch.nn reference" and ra["implementation"] == "arrayml"
    assert rb["model"]["parameters"] == ra["model"]["parameters"]
    # same initial weights and batches: the first losses agree to float32 rounding
    for la, lb in zip(ra["history"]["steps"]["loss"][:5], rb["history"]["steps"]["loss"][:5]):
        assert la == pytest.approx(lb, rel=1e-4)
    assert set(rb) == set(ra)


@pytest.mark.slow
def test_default_experiment_on_the_shared_cifar10_copy(tmp_path):
    """The headline: defaults on NumPy reach 46-53% test accuracy (about 50% on this copy)."""
    if not (SHARED / "cifar10_uint8.npz").is_file():
        pytest.skip(f"the team's CIFAR-10 copy is not at {SHARED}; nothing to reproduce")
    proc = run(TRAIN, "--data-dir", SHARED, "--out", tmp_path / "default", "--quiet")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "default" / "results.json").read_text())
    print(f"default experiment: test accuracy {results['test_accuracy']:.4f} in {results['timing']['wall_seconds']:.0f}s")
    assert 0.46 <= results["test_accuracy"] <= 0.53
    assert results["config"]["hidden_dims"] == [128] and results["config"]["epochs"] == 10
