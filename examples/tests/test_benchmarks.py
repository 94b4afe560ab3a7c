"""The benchmark scripts run, and their variants agree (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app_scripts import BENCHMARKS, load_script
from arrayml import backend
from backends import BACKENDS


def _load(name):
    return load_script(BENCHMARKS / f"{name}.py")


@pytest.mark.parametrize("bk", BACKENDS)
def test_loop_variants_compute_the_same_linear_gradients(bk):
    mvl = _load("matmul_vs_loop")
    rng = np.random.default_rng(1)
    hosts = [rng.normal(size=s) for s in ((5, 4), (3, 4), (1, 3), (5, 3))]
    X, W, b, dY = hosts
    expected = [X @ W.T + b, dY.T @ X, np.sum(dY, axis=0, keepdims=True), dY @ W]
    for name, fn in mvl.VARIANTS.items():
        got = fn(bk.xp, *(bk.asarray(h) for h in hosts))
        for label, g, e in zip(("Y", "dW", "db", "dX"), got, expected):
            np.testing.assert_allclose(backend.to_numpy(g), e, rtol=1e-10, err_msg=f"{name} {label}")


def test_matmul_vs_loop_script_writes_its_table(tmp_path, monkeypatch, capsys):
    mvl = _load("matmul_vs_loop")
    monkeypatch.setattr(mvl, "SIZES", [(4, 6, 3), (8, 6, 5)])
    assert mvl.main(["--budget", "0.01", "--json", str(tmp_path / "m.json")]) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert [r["S"] for r in report["rows"]] == [4, 8] and all(r["agree"] for r in report["rows"])
    assert "speedup" in capsys.readouterr().out


def test_ratios_print_with_two_significant_digits_never_as_0x():
    mvl = _load("matmul_vs_loop")
    assert [mvl.ratio(r) for r in (0.4, 0.853, 1.0, 1.234, 14.3, 196.2, 0.0123)] == \
        ["0.40", "0.85", "1.0", "1.2", "14", "196", "0.012"]


def test_benchmarks_write_json_only_where_asked(tmp_path, monkeypatch, capsys):
    """A try-out run must not overwrite the tracked results/bench/*.json (or write anything)."""
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    mvl = _load("matmul_vs_loop")
    monkeypatch.setattr(mvl, "SIZES", [(4, 6, 3)])
    assert mvl.main(["--budget", "0.01"]) == 0
    tt = _load("train_throughput")
    monkeypatch.setattr(tt, "N_TRAIN", 10 * tt.BATCH)  # ten steps an epoch: a quick run
    monkeypatch.setattr(tt, "matmul_rate", lambda hidden, repeats, lib="numpy": 1e9)
    assert tt.main(["--repeats", "1", "--hidden", "8", "--settle", "0",
                    "--variants", "arrayml/numpy,arrayml/torch (cpu),torch.nn (cpu),numpy loop"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "written to" not in capsys.readouterr().out


def test_matmul_vs_loop_rejects_an_unavailable_backend(capsys):
    mvl = _load("matmul_vs_loop")
    assert mvl.main(["--xp", "numpy", "--device", "cuda"]) == 2
    assert "numpy arrays live on the CPU only" in capsys.readouterr().err


def test_train_throughput_variants_agree_after_an_epoch(monkeypatch):
    pytest.importorskip("torch")
    tt = _load("train_throughput")
    # 2·B·(3·Σ in·out − in₀·out₀) per step: no input gradient for the first layer
    assert tt.epoch_flops([128], 1) == 2.0 * 128 * (3 * (3072 * 128 + 128 * 10) - 3072 * 128)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=640)
    x = (rng.normal(size=(10, 3072))[y] + rng.normal(size=(640, 3072))).astype(np.float32)
    variants = {"arrayml": tt.arrayml_variant("numpy", None, [16], x, y), "torch": tt.torch_variant("cpu", [16], x, y),
                "loop": tt.numpy_loop_variant([16], x, y), "strict": tt.arrayml_variant("array-api-strict", None, [16], x, y)}
    before = variants["arrayml"].params()
    for v in variants.values():
        v.epoch(0)
    after = variants["arrayml"].params()
    assert tt.relative_difference(after, before) > 1e-3  # training moved the weights
    for name, v in variants.items():
        assert tt.relative_difference(v.params(), after) < 1e-5, name


def test_train_throughput_compiled_and_jax_rows_agree_with_the_others():
    """The JAX and compiled rows: arrayml on JAX, eager and jax.jit-compiled, and arrayml's step
    compiled by torch.compile, hold the NumPy variant's weights after the same steps."""
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    tt = _load("train_throughput")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=384)
    x = (rng.normal(size=(10, 3072))[y] + rng.normal(size=(384, 3072))).astype(np.float32)
    ref = tt.arrayml_variant("numpy", None, [16], x, y)
    rows = {"jax": tt.arrayml_variant("jax", "cpu", [16], x, y),
            "jax compiled": tt.arrayml_variant("jax", "cpu", [16], x, y, compile=True),
            "torch compiled": tt.arrayml_variant("torch", "cpu", [16], x, y, compile=True)}
    ref.epoch(0)
    for name, v in rows.items():
        v.epoch(0)
        assert v.first_call is not None and v.first_call > 0, name  # its first step, timed on its own
        assert tt.relative_difference(v.params(), ref.params()) < 1e-5, name
    assert rows["jax compiled"].library == "jax" and rows["torch compiled"].library == "torch"


def test_train_throughput_prints_libraries_and_ratio_spreads_and_writes_them(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    tt = _load("train_throughput")
    monkeypatch.setattr(tt, "N_TRAIN", 10 * tt.BATCH)
    monkeypatch.setattr(tt, "matmul_rate", lambda hidden, repeats, lib="numpy": {"numpy": 1e9, "torch": 2e9}.get(lib, 1e9))
    out = tmp_path / "t.json"
    assert tt.main(["--repeats", "3", "--hidden", "8", "--settle", "0", "--json", str(out),
                    "--variants", "arrayml/numpy,torch.nn (cpu),numpy loop"]) == 0
    text = capsys.readouterr().out
    assert "threadpools:" in text and "intra-op threads" in text  # the BLAS and the threads it ran with
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/train_throughput.py --repeats 3")
    rows = {r["variant"]: r for r in report["networks"][0]["rows"]}
    assert list(rows) == ["arrayml/numpy", "torch.nn (cpu)", "numpy loop"]  # the order they run in each round
    a = rows["arrayml/numpy"]
    assert len(a["all_seconds"]) == 3 and a["min_seconds"] <= a["median_seconds"] <= a["max_seconds"]
    ratios = [s / r for s, r in zip(a["all_seconds"], rows["numpy loop"]["all_seconds"])]  # round by round
    assert a["ratio_to_numpy_loop"] == {"median": pytest.approx(np.median(ratios)), "min": pytest.approx(min(ratios)),
                                        "max": pytest.approx(max(ratios))}
    assert rows["numpy loop"]["ratio_to_numpy_loop"]["median"] == 1.0
    flops = tt.epoch_flops([8], 10)
    assert a["fraction_of_matmul_rate"] == pytest.approx(flops / a["median_seconds"] / 2e9)  # the best library's
    assert a["fraction_of_own_library_matmul_rate"] == pytest.approx(flops / a["median_seconds"] / 1e9)
    assert a["page_faults_per_step"] >= 0 and rows["torch.nn (cpu)"]["first_call_seconds"] is None
    with pytest.raises(SystemExit):
        tt.main(["--variants", "arrayml/fortran"])


def test_train_throughput_adam_rows_agree_with_torch_optim_and_are_timed_against_their_sgd_rows(tmp_path, monkeypatch):
    """The Adam rows: arrayml's Adam step (eager NumPy, eager torch) holds torch.optim.Adam's
    weights after the same steps, and each Adam row's time is divided by its SGD row's, round by round."""
    pytest.importorskip("torch")
    tt = _load("train_throughput")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=384)
    x = (rng.normal(size=(10, 3072))[y] + rng.normal(size=(384, 3072))).astype(np.float32)
    rows = {"numpy": tt.arrayml_variant("numpy", None, [16], x, y, optimizer="adam"),
            "torch": tt.arrayml_variant("torch", "cpu", [16], x, y, optimizer="adam"),
            "torch.nn": tt.torch_variant("cpu", [16], x, y, optimizer="adam")}
    sgd = tt.arrayml_variant("numpy", None, [16], x, y)
    for v in [*rows.values(), sgd]:
        v.epoch(0)
    for name, v in rows.items():
        assert tt.relative_difference(v.params(), rows["torch.nn"].params()) < 1e-5, name
    assert tt.relative_difference(rows["numpy"].params(), sgd.params()) > 1e-3  # Adam is not SGD
    assert [label for label, *_ in tt.available_variants(False) if label.endswith(tt.ADAM)][:2] == \
        ["arrayml/numpy adam", "arrayml/torch (cpu) adam"]
    monkeypatch.setattr(tt, "N_TRAIN", 10 * tt.BATCH)
    monkeypatch.setattr(tt, "matmul_rate", lambda hidden, repeats, lib="numpy": 1e9)
    out = tmp_path / "t.json"
    assert tt.main(["--repeats", "2", "--hidden", "8", "--settle", "0", "--json", str(out),
                    "--variants", "arrayml/numpy,arrayml/numpy adam"]) == 0
    rows_out = {r["variant"]: r for r in json.loads(out.read_text())["networks"][0]["rows"]}
    ratios = [a / b for a, b in zip(rows_out["arrayml/numpy adam"]["all_seconds"], rows_out["arrayml/numpy"]["all_seconds"])]
    assert rows_out["arrayml/numpy adam"]["ratio_to_sgd"]["median"] == pytest.approx(np.median(ratios))
    assert rows_out["arrayml/numpy"]["ratio_to_sgd"] is None


def test_cnn_throughput_quick_run_times_the_variants_against_torch_nn_and_writes_json(tmp_path, capsys):
    """The CNN benchmark's quick mode: the variants take torch.nn's steps from the same weights
    (checked inside: the run stops otherwise), each gets its epochs, its ratio to torch.nn round
    by round and its peak memory from a process of its own."""
    pytest.importorskip("torch")
    cnn = _load("cnn_throughput")
    out = tmp_path / "cnn.json"
    variants = "arrayml/numpy,arrayml/torch (cpu),torch.nn (cpu)"
    assert cnn.main(["--quick", "--repeats", "2", "--memory-steps", "1", "--variants", variants, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["variant"]: r for r in report["rows"]}
    assert list(rows) == variants.split(",") and report["settings"]["steps"] == 10
    assert report["settings"]["network"]["widths"] == [16, 32, 64] and report["settings"]["parameters"] == 72954
    assert max(report["relative_parameter_difference_after_10_steps"].values()) < cnn.AGREEMENT
    assert report["relative_movement_in_10_steps"] > cnn.MOVES
    a = rows["arrayml/numpy"]
    ratios = [s / r for s, r in zip(a["all_seconds"], rows["torch.nn (cpu)"]["all_seconds"])]
    assert a["ratio_to_torch_nn"]["median"] == pytest.approx(np.median(ratios))
    assert all(0 < r["peak_rss_mb"] < 4000 for r in rows.values()) and report["memory"]["steps"] == 1
    assert "peak RSS" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cnn.main(["--variants", "arrayml/fortran"])


def test_cnn_throughputs_torch_nn_network_computes_arrayml_cnns_outputs():
    torch = pytest.importorskip("torch")
    cnn = _load("cnn_throughput")
    model = cnn.network().to(dtype="float64")  # float32 weights: the torch.nn copy holds them exactly
    net = cnn.torch_network(model).double()
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32))
    for training in (True, False):
        model.train(training)
        net.train(training)
        want = net(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(backend.to_numpy(model.forward(x)), want, rtol=1e-10, atol=1e-12)


def test_data_parallel_model_is_compute_over_n_plus_the_ring_all_reduce():
    dp = _load("data_parallel")
    rows = {(r["machines"], r["gbit_per_s"]): r for r in dp.model_table(0.004, 1_000_000)}
    assert rows[(1, 10)]["allreduce_ms"] == 0 and rows[(1, 10)]["speedup"] == pytest.approx(1)
    # 8 machines at 10 Gbit/s: 2·7/8 · 1 MB / 1.25 GB/s = 1.4 ms, plus 4 ms / 8
    assert rows[(8, 10)]["allreduce_ms"] == pytest.approx(1.4)
    assert rows[(8, 10)]["step_ms"] == pytest.approx(0.5 + 1.4)
    assert rows[(64, 100)]["allreduce_ms"] == pytest.approx(2 * 63 / 64 * 1e6 / 12.5e9 * 1e3)


def test_data_parallel_benchmark_runs_every_variant(tmp_path, capsys):
    pytest.importorskip("torch")
    dp = _load("data_parallel")
    assert dp.main(["--steps", "3", "--repeats", "1", "--rounds", "1", "--json", str(tmp_path / "d.json")]) == 0
    report = json.loads((tmp_path / "d.json").read_text())
    assert set(report["variants"]) == {"1 process x 1 thread", "1 process x 2 threads", "2 processes x 1 thread",
                                       "2 processes x 1 thread, overlapped"}
    measured = report["variants"]["2 processes x 1 thread"]
    assert measured["allreduce_bytes"] == 4 * (3072 * 128 + 128 + 128 * 10 + 10 + 2)
    assert [row["bytes"] for row in measured["sweep"]] == dp.SWEEP_BYTES
    assert "A MODEL, not a measurement" in capsys.readouterr().out


def test_sklearn_benchmark_trains_the_estimator_exactly_as_the_librarys_epoch(tmp_path, capsys):
    pytest.importorskip("sklearn", reason='scikit-learn is not installed (pip install -e ".[sklearn]")')
    sm = _load("sklearn_mlp")
    out = tmp_path / "s.json"
    assert sm.main(["--datasets", "digits", "--rounds", "2", "--epochs", "digits=3", "--settle", "0",
                    "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["datasets"]["digits"]["variants"]
    assert set(rows) == {"arrayml.sklearn", "arrayml epoch", "scikit-learn"}
    # the estimator is the library's epoch and nothing else: the same weights, so the same predictions
    assert rows["arrayml.sklearn"]["accuracies"] == rows["arrayml epoch"]["accuracies"]
    assert all(r["epochs"] == 3 and r["dtype"] == "float32" for r in rows.values())
    assert all(a > 0.8 for r in rows.values() for a in r["accuracies"])
    assert "| arrayml.sklearn |" in capsys.readouterr().out


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


@pytest.mark.parametrize("threads", ["1", "2"])
def test_cnn_throughputs_thread_setting_leaves_xla_a_flag_it_can_parse(threads):
    """--threads N before JAX is imported: one thread is XLA's single-threaded Eigen flag; more
    leave XLA every core (it has no thread-count flag: an unparseable XLA_FLAGS aborts the process)."""
    pytest.importorskip("jax")
    code = ("import importlib.util, sys, os\n"
            "spec = importlib.util.spec_from_file_location('c', sys.argv[1]); m = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(m); print(m.use_threads(int(sys.argv[2])))\n"
            "import jax.numpy as jnp; print(float(jnp.sum(jnp.ones(3))))")
    proc = subprocess.run([sys.executable, "-c", code, str(BENCHMARKS / "cnn_throughput.py"), threads],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("3.0"), proc.stderr
    assert ("xla_cpu_multi_thread_eigen=false" in proc.stdout) == (threads == "1")
