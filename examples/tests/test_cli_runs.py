"""Runs never lose work and never overwrite each other: Ctrl-C and SIGTERM leave a resumable
checkpoint of the last finished epoch and the results of the epochs that finished, run folders
differ when runs differ, and a rerun into a folder that holds a run is numbered or refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app_scripts import TRAIN
from arrayml_app.config import RunConfig
from cifar_fixtures import make_cache

SMALL = ["--hidden-dims", "32", "--batch-size", "50", "--val-size", "100"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    make_cache(folder, n_train=700, n_test=150)
    return folder


def _start(args: list, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # SIGINT is a KeyboardInterrupt only where it is not ignored (background jobs ignore it)
    return subprocess.Popen([sys.executable, str(TRAIN), *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_after(proc: subprocess.Popen, line_start: str) -> tuple[int, str]:
    """Send Ctrl-C once the run has printed a line starting with `line_start`."""
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.lstrip().startswith(line_start):
            break
        assert time.monotonic() < deadline, "the run printed no such line"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_without_checkpoint_every_leaves_a_resumable_checkpoint(data_dir, tmp_path):
    out = tmp_path / "o"
    # once epoch 3's line is out, epoch 2 has been recorded (an epoch's line comes just before that)
    rc, err = _interrupt_after(_start(["--data-dir", data_dir, "--out", out, *SMALL, "--epochs", "10000"], tmp_path),
                               "epoch   3/10000")
    assert rc == 130, err
    ckpt = out / "checkpoint.npz"
    assert err.splitlines()[-1] == f"train.py: interrupted; continue with: python {TRAIN} --resume {ckpt}"
    with np.load(ckpt) as npz:
        meta = json.loads(npz["meta.json"].tobytes().decode())
    done = meta["fit"]["epochs_done"]
    assert done >= 2 and len(meta["fit"]["history"]["epochs"]) == done
    assert meta["architecture"]["config"]["n_hidden"] == [32]
    _check_partial_results(out, done, "SIGINT")
    # and it resumes: the next epoch line is past the checkpoint's
    rc, err = _interrupt_after(_start(["--resume", ckpt], tmp_path), f"epoch {done + 1:>3}/10000")
    assert rc == 130 and "--resume" in err.splitlines()[-1], err


def _check_partial_results(out: Path, done: int, signal_name: str) -> None:
    """results.json and the loss curve of the `done` epochs that finished, marked interrupted."""
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] == {"signal": signal_name, "epochs_done": done}
    assert [e["epoch"] for e in results["history"]["epochs"]] == list(range(1, done + 1))
    assert len(results["history"]["steps"]["loss"]) == done * (600 // 50)
    assert results["test"] is None and results["best_epoch"] is not None
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_is_handled_as_ctrl_c_and_the_run_resumes(data_dir, tmp_path):
    from arrayml import checkpoint

    out = tmp_path / "o"
    proc = _start(["--data-dir", data_dir, "--out", out, *SMALL, "--epochs", "10000"], tmp_path)
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:  # epoch 2's line is out: epoch 1 has been recorded
        if line.startswith("epoch   2/10000"):
            break
        assert time.monotonic() < deadline, "the run printed no second epoch"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    ckpt = out / "checkpoint.npz"
    assert err.splitlines()[-1] == f"train.py: terminated (SIGTERM); continue with: python {TRAIN} --resume {ckpt}"
    assert f"the finished epochs' results are in {out / 'results.json'} (marked interrupted)" in err
    assert "Traceback" not in err
    saved = checkpoint.load(ckpt)
    done = saved.meta["fit"]["epochs_done"]
    assert done >= 1 and len(saved.meta["fit"]["history"]["epochs"]) == done
    _check_partial_results(out, done, "SIGTERM")
    # the resume command works: one more epoch, then the run ends as an uninterrupted one
    saved.meta["config"]["epochs"] = done + 1
    checkpoint.save(ckpt, saved)
    resumed = subprocess.run([sys.executable, str(TRAIN), "--resume", str(ckpt), "--quiet"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is None and results["test_accuracy"] is not None
    assert results["timing"]["resumed_from_epoch"] == done and len(results["history"]["epochs"]) == done + 1
    assert checkpoint.load(ckpt).meta["fit"]["epochs_done"] == done + 1


def test_sigterm_raises_terminated_within_the_block_only():
    from arrayml_app.interrupts import Terminated, signal_name, sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # (the handler runs at once; never reached)
    assert isinstance(caught.value, KeyboardInterrupt) and signal_name(caught.value) == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    assert signal_name(KeyboardInterrupt()) == "SIGINT"


def test_ctrl_c_before_the_first_epoch_says_there_is_nothing_to_resume(data_dir, tmp_path):
    proc = _start(["--data-dir", data_dir, "--out", tmp_path / "o", *SMALL, "--epochs", "3"], tmp_path)
    rc, err = _interrupt_after(proc, "arrayml on")  # the first line, before any step
    assert rc == 130
    assert err.splitlines()[-1] == "train.py: interrupted before the first epoch finished: nothing to resume"


def test_run_names_differ_when_the_runs_differ(monkeypatch):
    base = RunConfig()
    assert base.run_name() == "mlp-128-relu-numpy-lr0.1-e10-s42"
    assert RunConfig(xp="torch", compile=True).run_name() == "mlp-128-relu-torch-compiled-lr0.1-e10-s42"
    assert RunConfig(xp="torch", device="cuda:1").run_name() == "mlp-128-relu-torch-cuda1-lr0.1-e10-s42"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert RunConfig().run_name() == "mlp-128-relu-numpy-lr0.1-e10-s42-np2"


def test_a_rerun_is_numbered_and_a_given_out_is_never_overwritten(data_dir, tmp_path):
    args = ["--data-dir", data_dir, *SMALL, "--epochs", "1", "--quiet"]
    for _ in range(2):
        proc = subprocess.run([sys.executable, str(TRAIN), *map(str, args)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    name = RunConfig(hidden_dims=[32], batch_size=50, val_size=100, epochs=1).run_name()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [name, f"{name}-2"]
    first = (tmp_path / "results" / name / "results.json").read_bytes()
    given = ["--out", tmp_path / "results" / name]
    proc = subprocess.run([sys.executable, str(TRAIN), *map(str, args + given)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert f"--out {tmp_path / 'results' / name} already holds a run" in proc.stderr and "--overwrite" in proc.stderr
    assert (tmp_path / "results" / name / "results.json").read_bytes() == first
    proc = subprocess.run([sys.executable, str(TRAIN), *map(str, args + given), "--overwrite"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
