"""The CIFAR-10 data set (archive, cache, corruption, offline, preprocessing, split) and the
generic batching of arrayml.data."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from arrayml import backend, data
from arrayml.datasets import cifar10
from backends import BACKENDS
from cifar_fixtures import make_archive, make_cache

pytestmark = pytest.mark.filterwarnings("ignore:.*holds .* training and .* test images")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home folder and no $ARRAYML_DATA, so nothing outside tmp_path is found."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ARRAYML_DATA", raising=False)
    return tmp_path / "home"


def test_download_verifies_parses_and_writes_the_cache(tmp_path, home):
    archive, md5, expected = make_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    target = tmp_path / "data"
    arrays = cifar10.load_cifar10(target, url=archive.as_uri(), md5=md5, progress=False)
    assert arrays["path"] == target / "cifar10_uint8.npz"
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)  # (N, 32, 32, 3) HWC restored
    assert arrays["x_train"].dtype == np.uint8 and arrays["y_train"].dtype == np.int64
    assert (target / "cifar10_uint8.npz").is_file()
    assert not list(target.glob("*.part"))  # no temporary files left behind
    # second call: the cache is used, no download (an unreachable URL would fail)
    again = cifar10.load_cifar10(target, url=(tmp_path / "gone.tar.gz").as_uri(), md5=md5, progress=False)
    np.testing.assert_array_equal(again["x_test"], expected["x_test"])


def test_search_order_data_dir_then_env_then_home_cache(tmp_path, home, monkeypatch):
    first = make_cache(tmp_path / "first", n_train=10, n_test=5, seed=1)
    env = make_cache(tmp_path / "env", n_train=11, n_test=5, seed=2)
    cached = make_cache(home / ".cache" / "arrayml", n_train=12, n_test=5, seed=3)
    monkeypatch.setenv("ARRAYML_DATA", str(env.parent))
    assert cifar10.load_cifar10(tmp_path / "first")["path"] == first
    assert cifar10.load_cifar10(first)["path"] == first  # the file itself works too
    assert cifar10.load_cifar10(None)["path"] == env
    monkeypatch.delenv("ARRAYML_DATA")
    assert cifar10.load_cifar10(None)["path"] == cached
    assert cifar10.load_cifar10(tmp_path / "empty", download_if_missing=False)["path"] == cached


def test_offline_without_data_says_where_it_looked_and_how_to_supply_it(tmp_path, home):
    with pytest.raises(cifar10.DataError) as info:
        cifar10.load_cifar10(tmp_path / "nowhere", url=(tmp_path / "no-such-file.tar.gz").as_uri(), progress=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar10_uint8.npz") in message
    assert str(home / ".cache" / "arrayml" / "cifar10_uint8.npz") in message
    assert "--data-dir" in message and "ARRAYML_DATA" in message and cifar10.CIFAR10_MD5 in message
    assert "could not download" in message
    with pytest.raises(cifar10.DataError, match="CIFAR-10 not found"):
        cifar10.load_cifar10(tmp_path / "nowhere", download_if_missing=False)


def test_a_failed_download_leaves_no_folder_it_created(tmp_path, home):
    typo = tmp_path / "dta" / "cifar"
    with pytest.raises(cifar10.DataError, match="could not download"):
        cifar10.load_cifar10(typo, url=(tmp_path / "no-such-file.tar.gz").as_uri(), progress=False)
    assert not (tmp_path / "dta").exists()  # a mistyped folder is not left behind
    assert not (home / ".cache").exists()


def test_download_progress_bar_only_on_a_terminal(tmp_path, home, capsys):
    archive, md5, _ = make_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    cifar10.load_cifar10(tmp_path / "data", url=archive.as_uri(), md5=md5)  # stderr is captured: not a terminal
    assert "\r" not in capsys.readouterr().err


def test_training_images_are_counted_from_the_header_without_loading(tmp_path, home):
    make_cache(tmp_path / "d", n_train=37, n_test=5)
    assert cifar10.training_images(tmp_path / "d") == (37, str(tmp_path / "d" / "cifar10_uint8.npz"))
    assert cifar10.training_images(tmp_path / "empty") == (50000, "CIFAR-10")  # would be downloaded


def test_wrong_md5_is_rejected_before_reading_and_leaves_nothing(tmp_path, home):
    archive, md5, _ = make_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    target = tmp_path / "data"
    with pytest.raises(cifar10.DataError, match=r"corrupt or incomplete: MD5 [0-9a-f]{32}, expected 0{32}"):
        cifar10.load_cifar10(target, url=archive.as_uri(), md5="0" * 32, progress=False)
    assert not (target / "cifar-10-python.tar.gz").exists()
    assert not (target / "cifar10_uint8.npz").exists()
    assert not list(target.glob(".*part"))


def test_truncated_archive_on_disk_is_replaced_by_a_fresh_download(tmp_path, home):
    archive, md5, expected = make_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    target = tmp_path / "data"
    target.mkdir()
    (target / "cifar-10-python.tar.gz").write_bytes(archive.read_bytes()[:500])
    with pytest.warns(UserWarning, match="fails its MD5 check"):
        arrays = cifar10.load_cifar10(target, url=archive.as_uri(), md5=md5, progress=False)
    np.testing.assert_array_equal(arrays["y_train"], expected["y_train"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing-key", "bad-labels", "bad-shape"])
def test_corrupt_cache_is_reported_and_replaced_never_used(tmp_path, home, damage):
    archive, md5, expected = make_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    target = tmp_path / "data"
    cache = make_cache(target, n_train=50, n_test=10)
    if damage == "truncate":
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    elif damage == "garbage":
        cache.write_bytes(b"not a zip file at all")
    elif damage == "missing-key":
        np.savez(cache, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    elif damage == "bad-labels":
        np.savez(cache, x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.array([0, 12]),
                 x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.array([1]))
    else:
        np.savez(cache, x_train=np.zeros((2, 32, 32), np.uint8), y_train=np.array([0, 1]),
                 x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.array([1]))
    with pytest.warns(UserWarning, match="ignoring corrupt CIFAR-10 cache"):
        arrays = cifar10.load_cifar10(target, url=archive.as_uri(), md5=md5, progress=False)
    np.testing.assert_array_equal(arrays["x_train"], expected["x_train"])
    # the bad file was replaced: the next load reads it without complaint
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="ignoring corrupt")
        cifar10.load_cifar10(target, download_if_missing=False)


def test_corrupt_cache_offline_is_an_error_not_a_silent_use(tmp_path, home):
    target = tmp_path / "data"
    cache = make_cache(target, n_train=50, n_test=10)
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.warns(UserWarning, match="ignoring corrupt"), pytest.raises(cifar10.DataError, match="not a readable .npz"):
        cifar10.load_cifar10(target, download_if_missing=False)


def test_archive_with_a_malicious_pickle_is_refused(tmp_path, home):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2)
    archive, md5, _ = make_archive(tmp_path / "server" / "cifar-10-python.tar.gz",
                                   payload={"cifar-10-batches-py/data_batch_3": evil})
    with pytest.raises(cifar10.DataError, match=r"refers to (__builtin__|builtins)\.print, which a data batch never needs"):
        cifar10.load_cifar10(tmp_path / "data", url=archive.as_uri(), md5=md5, progress=False)


def test_preprocess_scales_normalises_and_flattens_channel_first():
    img = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    img[0, :, :, 0] = 255  # red channel full
    img[0, 0, 1, 2] = 51  # one blue pixel at row 0, column 1
    out = cifar10.preprocess(img)
    assert out.shape == (1, 3072) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :1024], (1.0 - 0.491) / 0.247, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1024:2048], (0.0 - 0.482) / 0.243, rtol=1e-6)
    assert out[0, 2048 + 1] == pytest.approx((0.2 - 0.447) / 0.262, rel=1e-5)
    assert out[0, 2048] == pytest.approx(-0.447 / 0.262, rel=1e-5)


def _arrays(n_train=100, n_test=20):
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), "y_train": np.arange(n_train) % 10,
            "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(n_test) % 10}


def test_split_is_seeded_disjoint_and_of_the_asked_size():
    arrays = _arrays()
    a = cifar10.make_splits(arrays, val_size=30, seed=42)
    b = cifar10.make_splits(arrays, val_size=30, seed=42)
    c = cifar10.make_splits(arrays, val_size=30, seed=43)
    assert a.sizes() == {"train": 70, "val": 30, "test": 20}
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    train_rows = {r.tobytes() for r in a.x_train}
    assert not any(r.tobytes() in train_rows for r in a.x_val)
    assert cifar10.make_splits(arrays, val_size=30, seed=42, subset=40).sizes()["train"] == 40
    with pytest.raises(ValueError, match="val_size must be between 1 and 99"):
        cifar10.make_splits(arrays, val_size=100)


@pytest.mark.parametrize("bk", BACKENDS)
def test_training_batches_are_seeded_reshuffled_and_drop_the_last_partial_batch(bk):
    n, bs = 50, 8
    x = bk.asarray(np.arange(n * 2, dtype=np.float32).reshape(n, 2))
    y = bk.asarray(np.arange(n))

    def labels(seed, epoch):
        return [backend.to_numpy(yb).tolist() for _, yb in data.train_batches(x, y, bs, seed=seed, epoch=epoch)]

    e0 = labels(42, 0)
    assert len(e0) == n // bs and all(len(b) == bs for b in e0)
    flat = [v for b in e0 for v in b]
    assert len(set(flat)) == len(flat)  # each sample at most once per epoch
    assert labels(42, 0) == e0  # same seed and epoch: same batches
    assert labels(42, 1) != e0  # reshuffled each epoch
    assert labels(7, 0) != e0
    xb, yb = next(data.train_batches(x, y, bs, seed=42, epoch=0))
    np.testing.assert_array_equal(backend.to_numpy(xb)[:, 0], 2 * backend.to_numpy(yb))  # rows stay paired
    assert backend.device(xb) == bk.device


@pytest.mark.parametrize("bk", BACKENDS)
def test_training_batches_can_keep_the_last_batch_and_the_order(bk):
    n, bs = 50, 8
    x = bk.asarray(np.arange(n * 2, dtype=np.float32).reshape(n, 2))
    y = bk.asarray(np.stack([np.arange(n), -np.arange(n)], axis=1))  # 2-D targets (regression)

    def batches(**kw):
        return [(backend.to_numpy(xb), backend.to_numpy(yb)) for xb, yb in data.train_batches(x, y, bs, seed=3, epoch=0, **kw)]

    kept = batches(drop_last=False)
    assert [len(b[1]) for b in kept] == [8] * 6 + [2]
    assert data.steps_per_epoch(n, bs, drop_last=False) == 7 and data.steps_per_epoch(n, bs) == 6
    assert sorted(np.concatenate([b[1][:, 0] for b in kept]).tolist()) == list(range(n))  # every sample once
    assert [b[1].tolist() for b in kept[:6]] == [b[1].tolist() for b in batches()]  # the same permutation
    in_order = batches(shuffle=False, drop_last=False)
    assert np.concatenate([b[1][:, 0] for b in in_order]).tolist() == list(range(n))
    assert all(np.array_equal(xb[:, 0], 2 * yb[:, 0]) and np.array_equal(yb[:, 1], -yb[:, 0]) for xb, yb in in_order)


def test_the_last_batch_of_data_parallel_training_is_shared_too():
    x, y = np.zeros((10, 1), np.float32), np.arange(10)
    shares = [[b[1].tolist() for b in data.train_batches(x, y, 4, seed=0, epoch=0, shard=(r, 2), shuffle=False,
                                                          drop_last=False)] for r in (0, 1)]
    assert shares == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]


def test_evaluation_batches_cover_every_sample_once():
    x, y = np.zeros((25, 3), np.float32), np.arange(25)
    sizes = [int(b[1].shape[0]) for b in data.eval_batches(x, y, 10)]
    assert sizes == [10, 10, 5]
    assert np.concatenate([b[1] for b in data.eval_batches(x, y, 10)]).tolist() == list(range(25))


def test_splits_move_to_a_backend_once_with_the_asked_dtype():
    xs = backend.namespace_by_name("array-api-strict")
    splits = cifar10.make_splits(_arrays(), val_size=30)
    moved = splits.to(xs, xs.Device("device1"), xs.float64)
    assert moved.x_train.dtype == xs.float64 and moved.y_train.dtype == xs.int64
    assert backend.device(moved.x_test) == xs.Device("device1")


def test_shared_copy_matches_the_documented_format():
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "cifar10_uint8.npz"
    if not path.is_file():
        pytest.skip(f"team copy not present at {path}")
    arrays = cifar10.read_cache(path)
    assert arrays["x_train"].shape == (50000, 32, 32, 3) and arrays["x_test"].shape == (10000, 32, 32, 3)
    assert np.bincount(arrays["y_test"]).tolist() == [1000] * 10


def test_splits_to_takes_a_backend_name_and_refuses_a_bad_one_by_name():
    host = data.Splits(np.zeros((4, 2), dtype=np.float32), np.array([0, 1, 0, 1]))
    moved = host.to("numpy", None, "float64")
    assert backend.dtype_name(moved.x_train.dtype) == "float64" and moved.sizes()["train"] == 4
    assert backend.dtype_name(host.to("numpy").x_train.dtype) == "float32"  # dtype None: kept
    with pytest.raises(ValueError, match="xp|backend"):
        host.to("tensorflow", None, "float32")
