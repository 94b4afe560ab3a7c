"""Dropout (Srivastava et al., 2014), inverted: scaled at training time, the identity at
evaluation.

Training (docs/derivations.md, "Dropout"), for a drop probability p and u ~ U[0, 1) drawn per
entry:

    M = 1[u ≥ p] / (1 − p),     y = x ⊙ M,     dx = dy ⊙ M

so that E[y] = x and evaluation needs no rescaling: there y = x and dx = dy. The mask M is
drawn from a random key on the input's own namespace and device (`arrayml.backend.random`):

- in a training step (`arrayml.step.train_step`), the step's key, folded with the layer's index
  (`Module.set_random_key`): the learner derives the step's key from its seed and the step
  number (and the process's rank in data-parallel training), and a compiled step takes it as a
  traced argument, so the masks are reproducible and JAX draws them inside the compiled function;
- otherwise (a forward called directly), the layer's own stream: the key of its seed folded with
  the number of masks drawn so far;
- a key set on the layer itself (``layer.random_key = backend.random_key(...)``) fixes the mask:
  every forward of the same shape draws the same one (what the gradient tests do).
"""

from __future__ import annotations

from .. import backend, validate
from ..backend import Array, Seed
from .checks import check_grad, namespace_of
from .randomness import RandomModule


class Dropout(RandomModule):
    """Zeroes each entry with probability `p` in training mode and scales the rest by
    1/(1 − p); the identity in evaluation mode.

    Any real floating input: on float16 (or bfloat16) the mask is drawn in float32, as the same key
    draws it for a float32 input (NumPy's generator draws no float16), and cast.

    Args:
        p: drop probability, a finite number in [0, 1) (0: the identity).
        rng: a `numpy.random.Generator` or int seed of the layer's own stream of masks (used
            when no step hands it a key; default seed 0). A generator is not advanced: the seed
            comes from a child of it (``Generator.spawn``), so adding dropout to a network does
            not change the other layers' initial weights.
    """

    def __init__(self, p: float = 0.5, *, rng: Seed = None) -> None:
        super().__init__(rng)
        self.p = validate.real_number(p, "Dropout p", low=0.0, high=1.0, high_open=True)

    def forward(self, x: Array) -> Array:
        xp = namespace_of("Dropout.forward", ("input x",), x)
        backend.check_floating(x, "Dropout", xp=xp)
        if not self.training or self.p == 0.0:
            self._cache = (None, tuple(x.shape), x.dtype)
            return x
        dev = backend.device(x)
        # half precision (float16, bfloat16): drawn in float32, which every library's generator
        # draws (NumPy's draws no float16), and compared there: 1[u ≥ p] has the right probability
        draw = x.dtype if backend.dtype_name(x.dtype) in ("float32", "float64") else xp.float32
        u = backend.uniform_from_key(self.next_key(xp, dev), tuple(x.shape), xp=xp, device=dev, dtype=draw)
        mask = xp.astype(u >= self.p, x.dtype) * (1.0 / (1.0 - self.p))  # M = 1[u ≥ p] / (1 − p)
        self._cache = (mask, tuple(x.shape), x.dtype)
        return x * mask

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        mask, shape, dtype = self._saved()
        namespace_of("Dropout.backward", ("dy",), dy)
        check_grad(dy, shape, module="Dropout", dtype=dtype)
        if not input_grad:
            return None
        return dy if mask is None else dy * mask

    def arguments(self) -> dict[str, float]:
        return {"p": self.p}

    @property
    def mask(self) -> Array | None:
        """The scaled mask M of the last training forward (None after an identity forward)."""
        return None if self._cache is None else self._cache[0]

    def extra_repr(self) -> str:
        return f"p={self.p}"

