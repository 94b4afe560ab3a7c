"""The backend's native fast paths give what their standard-only fallbacks give, and write nothing
they were given.

array-api-strict holds only what the standard requires, so on it every function in
`arrayml.backend` runs its fallback: each fast path (NumPy, read-only NumPy, PyTorch; JAX and
array-api-strict on another device take the fallback too) is compared with the same function on
array-api-strict, on the same host data, special values included (±0, ±inf, NaN). Inputs are
checked unchanged afterwards; the read-only NumPy backend makes an attempt to write them an error.
"""

from __future__ import annotations

import numpy as np
import pytest

from arrayml import backend
from backends import BACKENDS, Backend

STRICT = Backend("strict", "array-api-strict")
SPECIAL = np.array([-2.0, -0.0, 0.0, 1e-30, 3.0, np.nan, np.inf, -np.inf])


def _values(rng: np.random.Generator, shape: tuple[int, ...], *, special: bool = True) -> np.ndarray:
    out = rng.normal(size=shape)
    if special:
        out.reshape(-1)[: SPECIAL.size] = rng.permutation(SPECIAL)
    return out


def _run(bk: Backend, fn, hosts: list[np.ndarray], dtype: str):
    """`fn` on `bk`'s arrays made from `hosts`; checks the arrays are unchanged afterwards and that
    every result has the inputs' dtype and device. Returns the results as host arrays."""
    arrays = [bk.asarray(h, dtype) for h in hosts]
    out = fn(*arrays)
    outs = out if isinstance(out, tuple) else (out,)
    for a, h in zip(arrays, hosts):
        np.testing.assert_array_equal(backend.to_numpy(a), h.astype(dtype))
    for o in outs:
        assert backend.dtype_name(o.dtype) == dtype
        assert backend.device(o) == backend.device(arrays[0])
    return [backend.to_numpy(o) for o in outs]


def _fallback(fn, hosts: list[np.ndarray], dtype: str):
    return _run(STRICT, fn, hosts, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_relu_fast_paths_equal_the_fallback_exactly(bk, dtype):
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    rng = np.random.default_rng(0)
    x, dy = _values(rng, (6, 7)), _values(rng, (6, 7))
    x.reshape(-1)[10:12] = 0.0  # the kink: gradient 0
    dy.reshape(-1)[-8:] = SPECIAL  # NaN and inf upstream gradients where x <= 0 too
    for fn, hosts in ((backend.relu, [x]), (backend.relu_backward, [x, dy])):
        (got,) = _run(bk, fn, hosts, dtype)
        (want,) = _fallback(fn, hosts, dtype)
        np.testing.assert_array_equal(got, want, err_msg=fn.__name__)  # NaN where NaN, ±0 as equal
    # the convention: 0 where x <= 0 (whatever dy is there), dy elsewhere (a NaN x passes dy)
    (got,) = _run(bk, backend.relu_backward, [x, dy], dtype)
    x32, dy32 = x.astype(dtype), dy.astype(dtype)
    np.testing.assert_array_equal(got, np.where(x32 <= 0, 0.0, dy32).astype(dtype))
    assert not np.any(np.signbit(got[x32 <= 0]))  # +0.0, as where(..., 0.0, ...) gives


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_fused_softmax_cross_entropy_equals_the_fallback(bk, dtype):
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    rng = np.random.default_rng(1)
    S, C = 9, 5
    x = rng.normal(size=(S, C)) * 3
    x[0, 1] = -np.inf  # a -inf logit on a class with target 0: adds 0, not NaN
    x[1, :] = [1e4, -1e4, 0.0, 5e3, -3e38]  # large logits: a finite loss
    x[2, 3] = np.nan  # a NaN logit: its row, and the loss, are NaN
    labels = rng.integers(0, C, size=S)
    labels[0] = 2
    t = np.eye(C)[labels]
    t[3] = [0.1, 0.2, 0.3, 0.4, 0.0]  # a row of class probabilities
    for hosts in ([x, t], [np.delete(x, 2, axis=0), np.delete(t, 2, axis=0)]):
        got = _run(bk, backend.softmax_cross_entropy, hosts, dtype)
        want = _fallback(backend.softmax_cross_entropy, hosts, dtype)
        tol = 1e-6 if dtype == "float32" else 1e-13
        for g, w, what in zip(got, want, ("loss", "softmax")):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=what)
    loss, y = got
    assert np.isfinite(loss) and np.all(np.isfinite(y))
    with np.errstate(over="ignore", invalid="ignore"):  # 0·(−inf) in the reference, masked by where
        assert float(loss) == pytest.approx(-np.mean(np.sum(np.where(hosts[1] == 0, 0.0, hosts[1] * _log_softmax(hosts[0])), axis=1)), rel=1e-5)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))


@pytest.mark.parametrize("bk", BACKENDS)
def test_take_rows_equals_take(bk):
    rng = np.random.default_rng(2)
    x, y = _values(rng, (7, 3)), rng.integers(0, 10, size=7)
    idx = bk.asarray(np.array([6, 0, 3, 3]), "int32" if bk.xp_name == "jax" and not backend.x64_enabled() else "int64")
    for host, dtype in ((x, "float32"), (y, "int64" if bk.xp_name != "jax" or backend.x64_enabled() else "int32")):
        a = bk.asarray(host, dtype)
        out = backend.take_rows(a, idx)
        np.testing.assert_array_equal(backend.to_numpy(out), host.astype(dtype)[[6, 0, 3, 3]])
        assert out.dtype == a.dtype and backend.device(out) == backend.device(a)
        np.testing.assert_array_equal(backend.to_numpy(a), host.astype(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_column_sums_equal_the_fallback(bk, dtype):
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    x = _values(np.random.default_rng(3), (9, 4), special=False)
    x[0, 0] = np.inf
    (got,) = _run(bk, backend.column_sums, [x], dtype)
    (want,) = _fallback(backend.column_sums, [x], dtype)
    assert got.shape == (1, 4)
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-13)


@pytest.mark.parametrize("bk", BACKENDS)
def test_count_true_equals_the_fallback(bk):
    mask_host = np.random.default_rng(4).normal(size=(6, 5)) > 0
    for host in (mask_host, mask_host[0], np.zeros((0,), dtype=bool)):
        mask = bk.asarray(host)
        got = backend.count_true(mask)
        want = backend.count_true(STRICT.asarray(host))
        assert int(got) == int(want) == int(host.sum())
        assert backend.dtype_name(got.dtype) == backend.dtype_name(backend.widest_int(backend.get_namespace(mask)))
        np.testing.assert_array_equal(backend.to_numpy(mask), host)


@pytest.mark.parametrize("bk", BACKENDS)
def test_fused_loss_with_the_one_hot_mask_gives_the_same_numbers(bk):
    """For integer labels the loss passes the boolean mask its one-hot rows came from; the sum
    over where(hot, log y, 0) is the sum over t·where(t == 0, 0, log y)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 4)) * 4
    x[0, 1] = -np.inf
    labels = rng.integers(0, 4, size=8)
    labels[0] = 0
    hot_host = labels[:, None] == np.arange(4)
    dtype = "float64" if bk.xp_name != "jax" or backend.x64_enabled() else "float32"
    xs, t, hot = bk.asarray(x, dtype), bk.asarray(hot_host.astype(dtype)), bk.asarray(hot_host)
    with_mask = backend.softmax_cross_entropy(xs, t, hot=hot)
    without = backend.softmax_cross_entropy(xs, t)
    for a, b in zip(with_mask, without):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert np.isfinite(float(with_mask[0]))


@pytest.mark.parametrize("bk", BACKENDS)
def test_one_hot_equals_the_fallback_out_of_range_labels_included(bk):
    labels = np.array([0, 3, 2, -1, 4, 7, 3])  # -1, 4 and 7 are not classes of 4: zero rows
    int_dtype = "int64" if bk.xp_name != "jax" or backend.x64_enabled() else "int32"
    a = bk.asarray(labels, int_dtype)
    rows, hot = backend.one_hot(a, 4, bk.xp.float32)
    want_rows, want_hot = backend.one_hot(STRICT.asarray(labels, int_dtype), 4, STRICT.xp.float32)
    np.testing.assert_array_equal(backend.to_numpy(rows), backend.to_numpy(want_rows))
    np.testing.assert_array_equal(backend.to_numpy(hot), backend.to_numpy(want_hot))
    np.testing.assert_array_equal(backend.to_numpy(rows), (labels[:, None] == np.arange(4)).astype(np.float32))
    assert backend.dtype_name(rows.dtype) == "float32" and backend.dtype_name(hot.dtype) == "bool"
    np.testing.assert_array_equal(backend.to_numpy(a), labels)


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("beta1", [0.9, 0.3], ids=["lerp-low", "lerp-high"])  # torch.lerp's two forms
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_adam_update_equals_the_fallback(bk, dtype, beta1, amsgrad):
    """NumPy's blocked kernel gives the standard form's bits, for an array of several blocks and a
    partial last one (and a small second parameter); torch's fused kernel its numbers to rounding."""
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    from arrayml.backend import _numpy

    rng = np.random.default_rng(6)
    shapes = [(3, _numpy.ADAM_BLOCK // 2 + 5), (7,)]  # 1.5 blocks and a bit; a bias-like vector
    hosts = []
    for shape in shapes:
        hosts += [rng.normal(size=shape) for _ in range(3)]  # p, g, m
        hosts += [np.abs(rng.normal(size=shape)), np.abs(rng.normal(size=shape)) * 1.5]  # v, v_max

    def fn(*arrays):
        xp = backend.get_namespace(arrays[0])
        step = xp.asarray(3.0, dtype=backend.widest_float(xp), device=backend.device(arrays[0]))
        groups = [arrays[i::5] for i in range(5)]  # p's, g's, m's, v's, v_max's
        out = backend.adam_update(*groups[:4], groups[4] if amsgrad else None, beta1=beta1, beta2=0.999,
                                  eps=1e-8, lr=0.01, step=step)
        return tuple(a for lst in out if lst is not None for a in lst)

    got = _run(bk, fn, hosts, dtype)
    want = _fallback(fn, hosts, dtype)
    assert len(got) == (8 if amsgrad else 6)
    # the bias corrections the inputs imply, checked on the small parameter against the formula
    p, g, m, v, v_max = hosts[5:]
    m1, v1 = m + (1 - beta1) * (g - m), 0.999 * v + 0.001 * g * g
    denom = np.sqrt(np.maximum(v_max, v1) if amsgrad else v1) / np.sqrt(1 - 0.999**3) + 1e-8
    formula = p - 0.01 / (1 - beta1**3) * m1 / denom
    np.testing.assert_allclose(want[1], formula, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)
    for a, b in zip(got, want):
        if bk.xp_name == "numpy":
            np.testing.assert_array_equal(a, b)
        else:
            # p − update cancels where p is near 0: an absolute tolerance of the entries' scale (about 1)
            tol = 2e-6 if dtype == "float32" else 1e-14
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.fixture
def numpy_adam(request, monkeypatch):
    """Which NumPy Adam kernel runs: numba's one loop (skipped without the [numba] extra) or the
    blocked ufuncs it falls back to."""
    from arrayml.backend import _numpy

    compiled_adam = _numpy.compiled_adam  # functools.cache'd: cleared before and after
    if request.param == "numba":
        pytest.importorskip("numba", reason="numba is not installed (the [numba] extra)")
        monkeypatch.delenv("ARRAYML_NUMBA", raising=False)
        _numpy.compiled_adam.cache_clear()
        assert _numpy.compiled_adam() is not None
    else:
        monkeypatch.setattr(_numpy, "compiled_adam", lambda: None)
    yield request.param
    compiled_adam.cache_clear()


@pytest.mark.parametrize("numpy_adam", ["numba", "ufunc-blocks"], indirect=True)
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("beta1", [0.9, 0.3], ids=["lerp-low", "lerp-high"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_numpy_adam_kernel_gives_the_standard_bits(numpy_adam, dtype, beta1, amsgrad):
    """Both NumPy kernels, whichever runs, give the standard form's bits (array-api-strict's),
    special values (±0, ±inf, NaN) in the parameter, gradient, moments and v̂ included, on a
    parameter of 1.5 blocks and a bit and on a small one."""
    from arrayml.backend import _numpy

    rng = np.random.default_rng(7)
    hosts = []
    for shape in [(3, _numpy.ADAM_BLOCK // 2 + 5), (9,)]:
        hosts += [_values(rng, shape) for _ in range(3)]  # p, g, m
        hosts += [np.abs(_values(rng, shape)) for _ in range(2)]  # v, v_max: ≥ 0, or inf, or NaN

    def fn(*arrays):
        xp = backend.get_namespace(arrays[0])
        step = xp.asarray(5.0, dtype=backend.widest_float(xp), device=backend.device(arrays[0]))
        groups = [arrays[i::5] for i in range(5)]
        out = backend.adam_update(*groups[:4], groups[4] if amsgrad else None, beta1=beta1, beta2=0.99,
                                  eps=1e-8, lr=0.01, step=step)
        return tuple(a for lst in out if lst is not None for a in lst)

    with np.errstate(all="ignore"):  # inf − inf, 0/0: NaN is the point here
        got = _run(Backend("numpy", "numpy"), fn, hosts, dtype)
        want = _fallback(fn, hosts, dtype)
    assert len(got) == len(want) == (8 if amsgrad else 6)
    assert any(np.isnan(a).any() for a in want) and any(np.isinf(a).any() for a in want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_numpy_adam_falls_back_to_the_ufunc_kernel(monkeypatch):
    """Without numba (not installed, or ``ARRAYML_NUMBA=0``) the blocked ufuncs run; numba that is
    installed but does not import is said in a warning, not an error."""
    import sys

    from arrayml.backend import _numpy

    try:
        monkeypatch.setenv("ARRAYML_NUMBA", "0")
        _numpy.compiled_adam.cache_clear()
        assert _numpy.compiled_adam() is None
        monkeypatch.delenv("ARRAYML_NUMBA")
        monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ModuleNotFoundError
        monkeypatch.delitem(sys.modules, "arrayml.backend._numba", raising=False)
        _numpy.compiled_adam.cache_clear()
        assert _numpy.compiled_adam() is None
        monkeypatch.setitem(sys.modules, "arrayml.backend._numba", type(sys)("arrayml.backend._numba"))  # no adam_one
        _numpy.compiled_adam.cache_clear()
        with pytest.warns(RuntimeWarning, match="numba is installed but did not import"):
            assert _numpy.compiled_adam() is None
    finally:
        _numpy.compiled_adam.cache_clear()


def test_the_numba_kernel_compiles_where_it_cannot_cache(monkeypatch):
    """Where numba finds no writable place for its disk cache (a read-only install), the kernel
    is compiled in each process instead of failing."""
    numba = pytest.importorskip("numba", reason="numba is not installed (the [numba] extra)")
    from arrayml.backend import _numba

    asked = []
    real_njit = numba.njit

    def njit(**options):
        asked.append(options.get("cache", False))
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return real_njit(**options)

    monkeypatch.setattr(_numba.numba, "njit", njit)

    def twice(x):
        return 2.0 * x

    assert _numba._jit(twice)(1.5) == 3.0
    assert asked == [True, False]


# --------------------------------------------------------------------------------------------
# Convolution and pooling: NumPy's blocked im2col, PyTorch's and JAX's own kernels
# --------------------------------------------------------------------------------------------

#: (input shape, weight shape, stride, padding, dilation): the usual 3x3, a non-square strided
#: and dilated one (JAX's input gradient takes the standard form there), a 1x1 with stride 3.
CONV_SETTINGS = [
    ((3, 2, 7, 6), (4, 2, 3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 3, 9, 8), (2, 3, 2, 3), (2, 1), (0, 2), (2, 1)),
    ((5, 1, 6, 6), (3, 1, 1, 1), (3, 3), (0, 0), (1, 1)),
]


@pytest.fixture
def small_blocks(monkeypatch):
    """NumPy's convolution in blocks of one image, so that the block loop itself is tested."""
    from arrayml.backend import _numpy_layers

    monkeypatch.setattr(_numpy_layers, "BLOCK_BYTES", 1)


def _tolerance(dtype: str) -> dict:
    # BLAS, oneDNN and XLA sum the products in other orders than the standard form's matmul
    return dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("setting", CONV_SETTINGS, ids=["3x3", "nonsquare-strided-dilated", "1x1-stride3"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_conv2d_fast_paths_equal_the_standard_form(bk, dtype, setting, small_blocks):
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    x_shape, w_shape, stride, padding, dilation = setting
    rng = np.random.default_rng(8)
    x, w, b = (_values(rng, shape, special=False) for shape in (x_shape, w_shape, w_shape[:1]))
    x[0, 0, 0, 0], x[-1, -1, 0, 0] = np.nan, np.inf  # NaN and inf reach the outputs that read them, alike
    settings = dict(stride=stride, padding=padding, dilation=dilation)
    forward = lambda x, w, b: backend.conv2d(x, w, b, **settings)  # noqa: E731
    (got,), (want,) = _run(bk, forward, [x, w, b], dtype), _fallback(forward, [x, w, b], dtype)
    np.testing.assert_allclose(got, want, equal_nan=True, **_tolerance(dtype))
    assert np.isnan(want).any() and np.isinf(want).any()
    dy = _values(rng, want.shape, special=False)
    x = _values(rng, x_shape, special=False)
    for input_grad in (True, False):
        def backward(dy, x, w, input_grad=input_grad):
            dx, dw, db = backend.conv2d_backward(dy, x, w, input_grad=input_grad, **settings)
            assert (dx is None) != input_grad
            return (dw, db) if dx is None else (dx, dw, db)

        got, want = _run(bk, backward, [dy, x, w], dtype), _fallback(backward, [dy, x, w], dtype)
        for g, v, what in zip(got, want, ("dx", "dW", "db") if input_grad else ("dW", "db")):
            np.testing.assert_allclose(g, v, err_msg=what, **_tolerance(dtype))


@pytest.mark.parametrize("window", [((2, 2), (2, 2)), ((3, 2), (1, 2))], ids=["2x2", "overlapping-3x2"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_pooling_fast_paths_equal_the_standard_form(bk, dtype, window):
    """Max pooling exactly (a maximum and its place are comparisons), average pooling to rounding
    (XLA divides by multiplying with the reciprocal), special values included (one NaN per window:
    with several, PyTorch's kernel routes the gradient to the last of them, the standard form to
    the first)."""
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    kernel, stride = window
    rng = np.random.default_rng(9)
    x = rng.integers(-2, 3, size=(2, 3, 7, 6)).astype(np.float64)  # ties in most windows
    x[0, 0, 0, 0], x[1, 2, 3, 3], x[1, 1, 5, 4], x[0, 1, 2, 2] = np.nan, np.inf, -np.inf, -0.0
    for kind in ("max", "avg"):
        pool = getattr(backend, f"{kind}_pool2d")

        def forward(x, pool=pool, kind=kind):
            out = pool(x, kernel, stride)
            return out[0] if kind == "max" else out

        (got,), (want,) = _run(bk, forward, [x], dtype), _fallback(forward, [x], dtype)
        tol = dict(rtol=0, atol=0) if kind == "max" else _tolerance(dtype)
        np.testing.assert_allclose(got, want, err_msg=kind, equal_nan=True, **tol)
        dy = rng.normal(size=want.shape)

        def backward(x, dy, kind=kind):
            if kind == "avg":
                return backend.avg_pool2d_backward(dy, x, kernel, stride)
            _, saved = backend.max_pool2d(x, kernel, stride)
            return backend.max_pool2d_backward(dy, saved, kernel, stride)

        (got,), (want,) = _run(bk, backward, [x, dy], dtype), _fallback(backward, [x, dy], dtype)
        if stride != kernel:  # overlapping windows: an entry's gradients added in another order
            tol = _tolerance(dtype)
        np.testing.assert_allclose(got, want, err_msg=kind, **tol)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 5, 6)], ids=["rows", "images"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_batch_norm_fast_paths_equal_the_standard_form(bk, dtype, shape):
    """PyTorch's fused native_batch_norm (running statistics updated on copies) and NumPy's
    fewer-pass form against the standard algebra, rows and images; the inputs (the running
    statistics included) unchanged."""
    if bk.xp_name == "jax" and dtype == "float64" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    rng = np.random.default_rng(10)
    c = shape[1]
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    x = _values(rng, shape, special=False) * 3 + 1
    gamma, beta = rng.uniform(0.5, 2, size=c), _values(rng, (c,), special=False)
    mean, var = _values(rng, (c,), special=False), rng.uniform(0.5, 2, size=c)
    dy = _values(rng, shape, special=False)

    def both(x, gamma, beta, mean, var, dy):
        y, new_mean, new_var, saved = backend.batch_norm(x, gamma, beta, mean, var, axes=axes, momentum=0.3, eps=1e-5)
        dx, dgamma, dbeta = backend.batch_norm_backward(dy, saved, gamma, axes=axes)
        none, dgamma2, _ = backend.batch_norm_backward(dy, saved, gamma, axes=axes, input_grad=False)
        assert none is None
        return y, new_mean, new_var, dx, dgamma, dbeta, dgamma2

    hosts = [x, gamma, beta, mean, var, dy]
    got, want = _run(bk, both, hosts, dtype), _fallback(both, hosts, dtype)
    for g, w, what in zip(got, want, ("y", "running mean", "running var", "dx", "dgamma", "dbeta", "dgamma (no dx)")):
        np.testing.assert_allclose(g, w, err_msg=what, **_tolerance(dtype))
