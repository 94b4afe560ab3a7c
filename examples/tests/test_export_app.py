"""The command line of the export: ``train.py --export-onnx PATH`` then
``predict_onnx.py PATH --data-dir DIR`` print the same test accuracy, predict_onnx imports no
arrayml, a bad --export-onnx is a one-line error before any training, and the inference benchmark
runs. On a small CIFAR-10 look-alike; skipped, naming the install command, without the extra."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app_scripts import BENCHMARKS, EXAMPLES, TRAIN, load_script
from backends import needs_onnx
from cifar_fixtures import make_cache

PREDICT = EXAMPLES / "predict_onnx.py"
SMALL = ["--hidden-dims", "32", "--batch-size", "50", "--val-size", "100", "--epochs", "2", "--quiet"]

# predict_onnx.py run with every import of arrayml failing, as on a machine without it
NO_ARRAYML = """import runpy, sys
class _NoArrayml:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("arrayml", "arrayml_app"):
            raise ModuleNotFoundError("arrayml is hidden from predict_onnx.py", name=name)
sys.meta_path.insert(0, _NoArrayml())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    make_cache(folder, n_train=700, n_test=150)
    return folder


def run(*args, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _accuracy(text):
    found = re.findall(r"test accuracy (\d\.\d{4})", text)
    assert found, text
    return found[0]


CNN = ["--model", "cnn", "--widths", "4", "6", "--blocks", "1", "--crop", "2", "--flip"]


@needs_onnx
@pytest.mark.parametrize("kind", [[], CNN], ids=["mlp", "cnn"])
def test_train_exports_and_predict_onnx_prints_the_same_test_accuracy_without_arrayml(data_dir, tmp_path, kind):
    model = tmp_path / "model.onnx"
    trained = run(TRAIN, "--data-dir", data_dir, "--out", tmp_path / "run", *SMALL, "--batch-norm", *kind,
                  "--export-onnx", model)
    assert trained.returncode == 0, trained.stderr
    predicted = run("-c", NO_ARRAYML, PREDICT, model, "--data-dir", data_dir)
    assert predicted.returncode == 0, predicted.stderr
    assert _accuracy(predicted.stdout) == _accuracy(trained.stdout)
    assert "recorded test accuracy" in predicted.stdout and ": the same" in predicted.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert f"{results['test_accuracy']:.4f}" == _accuracy(predicted.stdout)
    assert results["config"]["export_onnx"] == str(model)


@needs_onnx
@pytest.mark.parametrize("where, message", [
    ("missing/model.onnx", "does not exist (create it first)"),
    (".", "it is a folder"),
])
def test_a_bad_export_path_is_a_one_line_error_before_training(data_dir, tmp_path, where, message):
    proc = run(TRAIN, "--data-dir", data_dir, "--out", tmp_path / "run", *SMALL, "--export-onnx", tmp_path / where)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--export-onnx" in lines[0] and message in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()


@needs_onnx
def test_export_onto_an_existing_file_is_refused_before_the_data_unless_forced(data_dir, tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"a model exported by an earlier run")
    proc = run(TRAIN, "--data-dir", data_dir, "--out", tmp_path / "run", *SMALL, "--export-onnx", model)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"--export-onnx {model}: a file is already there" in lines[0], proc.stderr
    assert f"({tmp_path / 'model-2.onnx'} is free), or --force to replace it" in lines[0]
    assert "holds 700 training" not in proc.stderr  # refused from the flags alone: no image was read
    assert model.read_bytes() == b"a model exported by an earlier run" and not (tmp_path / "run").exists()
    proc = run(TRAIN, "--data-dir", data_dir, "--out", tmp_path / "run", *SMALL, "--export-onnx", model, "--force")
    assert proc.returncode == 0, proc.stderr
    onnx = pytest.importorskip("onnx")
    assert onnx.load(str(model)).graph.input[0].name  # replaced, as asked, by this run's model
    assert json.loads((tmp_path / "run" / "results.json").read_text())["config"]["export_onnx"] == str(model)


def test_the_numbered_name_offered_is_the_first_free_one(tmp_path):
    from arrayml_app.config import free_name

    assert free_name(tmp_path / "model.onnx") == tmp_path / "model.onnx"
    for name in ("model.onnx", "model-2.onnx"):
        (tmp_path / name).write_bytes(b"x")
    assert free_name(tmp_path / "model.onnx") == tmp_path / "model-3.onnx"


@needs_onnx
def test_predict_onnx_refuses_a_model_that_does_not_take_the_stored_images(data_dir, tmp_path):
    import arrayml as am
    from arrayml import export

    export.to_onnx(am.MLP(3072, [4], 10), tmp_path / "plain.onnx")  # takes normalised rows, not images
    proc = run(PREDICT, tmp_path / "plain.onnx", "--data-dir", data_dir)
    assert proc.returncode == 2 and "not the images as the data set stores them" in proc.stderr
    proc = run(PREDICT, tmp_path / "none.onnx", "--data-dir", data_dir)
    assert proc.returncode == 2 and "no file at" in proc.stderr
    from arrayml.datasets import cifar10

    images = export.Preprocess(cifar10.normalize, (32, 32, 3), "uint8", cifar10.RAW_LAYOUT)
    export.to_onnx(am.MLP(3072, [4], 10), tmp_path / "images.onnx", preprocess=images)
    proc = run(PREDICT, tmp_path / "images.onnx", "--data-dir", tmp_path)
    assert proc.returncode == 2 and "no cifar10_uint8.npz" in proc.stderr
    proc = run(PREDICT, tmp_path / "images.onnx", "--data-dir", data_dir)
    assert proc.returncode == 0 and "test accuracy" in proc.stdout and "recorded" not in proc.stdout


@needs_onnx
def test_the_inference_benchmark_measures_agreement_and_time(data_dir, tmp_path, capsys):
    bench = load_script(BENCHMARKS / "onnx_inference.py")
    out = tmp_path / "bench.json"
    args = ["--data-dir", str(data_dir), "--epochs", "1", "--val-size", "100", "--repeats", "1", "--json", str(out)]
    assert bench.main(args) == 0
    report = json.loads(Path(out).read_text())
    agreement = report["agreement"]
    assert agreement["images"] == 150 and agreement["predictions_that_differ"] == 0
    assert agreement["max_abs_logit_difference"] < 1e-4
    assert agreement["test_accuracy_numpy"] == agreement["test_accuracy_onnxruntime"] == agreement["test_accuracy_training_run"]
    assert set(report["timing"]["seconds_per_10000_images_median"]) == {"arrayml numpy", "onnxruntime"}
    assert "numpy / onnxruntime" in capsys.readouterr().out
