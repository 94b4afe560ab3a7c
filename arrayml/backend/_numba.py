"""NumPy's Adam update as one compiled loop, when numba is installed (the ``[numba]`` extra).

NumPy runs an expression one ufunc at a time, so an Adam update, about twelve element-wise
operations, is twelve passes and twelve calls per block (`_numpy._blocked_adam`). Here numba
compiles the same operations, in the same order and the same dtype, into one loop over the
entries: each entry is read once and its three results written once, the loop vectorised by
LLVM. ``fastmath`` stays off (no contraction into fused multiply-adds, no reassociation), so the
numbers are the standard form's bit for bit, as `tests/test_fast_paths.py` checks; only
``error_model="numpy"`` is asked for (a division by zero gives inf as in NumPy, instead of a
Python exception, which is what lets the loop vectorise).

Importing this module imports numba; `_numpy` does so on the first Adam update on NumPy
arrays, not on ``import arrayml``, and falls back to the blocked ufuncs when numba is missing or
``ARRAYML_NUMBA=0`` is set. Compiled code is cached on disk (``cache=True``), so a new process
loads it instead of compiling again.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


def _jit(fn: Any) -> Any:
    """`fn` compiled by numba, cached on disk when numba finds a writable place for its cache (next
    to this file, or the user's cache folder); else compiled once in each process."""
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available" (a read-only install)
        return numba.njit(nogil=True, error_model="numpy")(fn)


@_jit
def adam_loop(p, g, m0, v0, vmax0, low_w, w, one_minus_w, beta2, one_minus_beta2, size_c, eps_c,
              p_out, m_out, v_out, vmax_out):
    """`_numpy._flat_adam`'s loop, one entry at a time."""
    amsgrad = vmax_out.size > 0
    for i in range(p.size):
        gi, mi = g[i], m0[i]
        # m' = lerp(m, g, 1 − β₁), in torch.lerp's two forms
        if low_w:
            mi = (gi - mi) * w + mi
        else:
            mi = gi - (gi - mi) * one_minus_w
        # v' = β₂ v + ((1 − β₂) g) g
        vi = v0[i] * beta2 + (gi * one_minus_beta2) * gi
        m_out[i] = mi
        v_out[i] = vi
        if amsgrad:
            vi = np.maximum(vmax0[i], vi)
            vmax_out[i] = vi
        # p − (step_size·√(1 − β₂ᵗ) · m') / (√v̂' + ε·√(1 − β₂ᵗ))
        p_out[i] = p[i] - (mi * size_c) / (np.sqrt(vi) + eps_c)
