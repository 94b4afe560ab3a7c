"""The application's checkpoints (examples/train.py --checkpoint-every, --resume): determinism, a
real training process killed mid-run and resumed to the same parameters and history, resuming on
another backend, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from app_scripts import TRAIN
from arrayml import checkpoint
from cifar_fixtures import make_cache

# --------------------------------------------------------------------------------------------
# The command line: --checkpoint-every, --resume, and a real kill
# --------------------------------------------------------------------------------------------

ARGS = ["--hidden-dims", "64", "--batch-size", "32", "--val-size", "100", "--lr", "0.05",
        "--momentum", "0.9", "--batch-norm", "--quiet"]
#: Adam (its moments and step count in the checkpoint), dropout (masks from the seed and the step
#: number), clipping, random flips of the fixture's images.
ADAM_ARGS = ["--hidden-dims", "64", "--batch-size", "32", "--val-size", "100", "--optimizer", "adam", "--lr", "0.002",
             "--amsgrad", "--dropout", "0.3", "--clip-grad-norm", "1", "--flip", "--layer-norm", "--quiet"]
#: A CNN: convolutions, batch norm of images, max pooling, and random crops and flips (offsets and
#: mirrors from the seed and the step number).
CNN_ARGS = ["--model", "cnn", "--widths", "4", "6", "--blocks", "1", "--batch-norm", "--crop", "2", "--flip",
            "--batch-size", "32", "--val-size", "100", "--lr", "0.05", "--momentum", "0.9", "--quiet"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    make_cache(folder, n_train=900, n_test=200)
    return folder


def _train(data_dir, out, *extra, check=True, args=ARGS):
    cmd = [sys.executable, str(TRAIN), "--data-dir", str(data_dir), "--out", str(out), *args, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _strip_times(history):
    return json.loads(json.dumps(history, default=str), object_hook=lambda d: {k: v for k, v in d.items() if k != "seconds"})


def _final(out):
    results = json.loads((out / "results.json").read_text())
    ckpt = checkpoint.load(out / "checkpoint.npz")
    return results, ckpt


@pytest.mark.parametrize("args,epochs", [(ARGS, "60"), (ADAM_ARGS, "40"), (CNN_ARGS, "25")],
                         ids=["sgd-momentum", "adam-dropout-flip", "cnn-crop-flip"])
def test_killed_run_resumed_from_its_last_checkpoint_matches_an_uninterrupted_run(data_dir, tmp_path, args, epochs):
    _train(data_dir, tmp_path / "straight", "--epochs", epochs, "--checkpoint-every", "1", args=args)
    ref_results, ref_ckpt = _final(tmp_path / "straight")

    out = tmp_path / "killed"
    cmd = [sys.executable, str(TRAIN), "--data-dir", str(data_dir), "--out", str(out), *args,
           "--epochs", epochs, "--checkpoint-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.002)
    time.sleep(0.05)  # let it get somewhere inside a later epoch (or a later checkpoint write)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists(), "the run finished before it could be killed"
    done = checkpoint.load(out / "checkpoint.npz").meta["fit"]["epochs_done"]  # the last one is whole
    assert 1 <= done < int(epochs)

    _train(data_dir, out, "--resume", str(out / "checkpoint.npz"), args=args)  # same flags again: allowed, as saved
    resumed_results, resumed_ckpt = _final(out)
    assert resumed_results["timing"]["resumed_from_epoch"] == done
    assert _strip_times(resumed_results["history"]) == _strip_times(ref_results["history"])
    assert resumed_results["test"] == ref_results["test"]
    assert resumed_results["best_epoch"] == ref_results["best_epoch"]
    for name, value in ref_ckpt.model.items():  # bit for bit on NumPy
        np.testing.assert_array_equal(resumed_ckpt.model[name], value, err_msg=name)
    assert set(resumed_ckpt.optimizer) == set(ref_ckpt.optimizer) != set()
    for name, value in ref_ckpt.optimizer.items():
        np.testing.assert_array_equal(resumed_ckpt.optimizer[name], value, err_msg=name)
    if args is ADAM_ARGS:
        assert int(ref_ckpt.optimizer["step"]) == int(epochs) * (800 // 32)  # Adam's step count, saved


def test_resume_onto_another_backend_is_allclose(data_dir, tmp_path):
    # float64, so that the only difference between the backends is summation order (~1e-16)
    _train(data_dir, tmp_path / "a", "--epochs", "4", "--checkpoint-every", "2", "--dtype", "float64")
    first = checkpoint.load(tmp_path / "a" / "checkpoint.npz")
    assert first.meta["fit"]["epochs_done"] == 4
    # stop a numpy run after 2 epochs (a run of 2 epochs with the same settings writes the same
    # epoch-2 checkpoint as the 4-epoch run), then finish it on torch
    _train(data_dir, tmp_path / "b", "--epochs", "2", "--checkpoint-every", "2", "--dtype", "float64")
    ckpt_b = tmp_path / "b" / "checkpoint.npz"
    meta = checkpoint.load(ckpt_b)
    meta.meta["config"]["epochs"] = 4  # continue it to 4 epochs
    checkpoint.save(ckpt_b, meta)
    _train(data_dir, tmp_path / "c", "--resume", str(ckpt_b), "--xp", "torch", "--checkpoint-every", "2")
    torch_final = checkpoint.load(tmp_path / "c" / "checkpoint.npz")
    assert json.loads((tmp_path / "c" / "results.json").read_text())["backend"] == "torch"
    for name, value in first.model.items():
        np.testing.assert_allclose(torch_final.model[name], value, rtol=1e-7, atol=1e-9, err_msg=name)


def test_same_seed_identical_runs_and_the_seed_controls_everything(data_dir, tmp_path):
    _train(data_dir, tmp_path / "a", "--epochs", "2", "--checkpoint-every", "2")
    _train(data_dir, tmp_path / "b", "--epochs", "2", "--checkpoint-every", "2")
    _train(data_dir, tmp_path / "c", "--epochs", "2", "--checkpoint-every", "2", "--seed", "7")
    (ra, ca), (rb, cb), (rc, cc) = (_final(tmp_path / k) for k in "abc")
    assert _strip_times(ra["history"]) == _strip_times(rb["history"])
    for name in ca.model:
        np.testing.assert_array_equal(ca.model[name], cb.model[name])
    assert not np.array_equal(ca.model["0.weight"], cc.model["0.weight"])
    assert ra["history"]["steps"]["loss"] != rc["history"]["steps"]["loss"]


def test_resume_refuses_to_change_the_run(data_dir, tmp_path):
    _train(data_dir, tmp_path / "a", "--epochs", "1", "--checkpoint-every", "1")
    proc = _train(data_dir, tmp_path / "a", "--resume", str(tmp_path / "a" / "checkpoint.npz"), "--lr", "0.5", check=False)
    assert proc.returncode == 2 and "cannot change --lr when resuming" in proc.stderr


def test_an_adam_checkpoint_resumed_with_another_optimizer_is_refused(data_dir, tmp_path):
    _train(data_dir, tmp_path / "a", "--epochs", "1", "--checkpoint-every", "1", args=ADAM_ARGS)
    ckpt = tmp_path / "a" / "checkpoint.npz"
    assert {"step", "exp_avg/1.0.weight", "max_exp_avg_sq/1.0.weight"} <= set(checkpoint.load(ckpt).optimizer)
    proc = _train(data_dir, tmp_path / "a", "--resume", str(ckpt), "--optimizer", "sgd", check=False, args=["--quiet"])
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "cannot change --optimizer when resuming" in proc.stderr
    # a checkpoint whose configuration was edited to say SGD: its Adam state is refused, by name
    saved = checkpoint.load(ckpt)
    saved.meta["config"].update(optimizer="sgd", amsgrad=False)
    checkpoint.save(ckpt, saved)
    proc = _train(data_dir, tmp_path / "a", "--resume", str(ckpt), check=False, args=["--quiet"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "SGD state has entries ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step'] that this optimizer does not keep" \
        in proc.stderr


def test_resume_with_a_bad_checkpoint_is_a_one_line_error(data_dir, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    proc = _train(data_dir, tmp_path / "x", "--resume", str(bad), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "is not an arrayml checkpoint, or is corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr
