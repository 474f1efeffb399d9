"""Parameter convolution (Method A, 3.1.3; mechanics from Spec A.5, reading (a)).

1. Min-max normalize every input feature with training statistics; a missing value (NaN)
   becomes the training median of its feature (normalized), since the window arithmetic
   needs numbers. Values outside the training range are clipped to [0, 1].
2. Stage 1: ``m1`` fixed random kernels of width ``width`` (seeded, N(0, 1)) slide with
   stride 1 along the ordered, normalized feature vector of each sample; each output passes
   through ``tanh`` and is averaged over window positions: ``m1`` features.
3. Stage 2: ``m2`` kernels of the same width slide over the ``m1``-vector the same way:
   ``m2`` features.

Without the ``tanh`` the averaged outputs would be linear combinations of just ``width``
window means, i.e. every derived feature would lie in a 3-dimensional subspace; the
nonlinearity makes the ``m1 + m2`` columns distinct functions of the inputs. The kernels
and the normalization are fitted once and stored, so prediction reproduces them exactly.
The derived columns are appended to the raw features (``conv1_00``.., ``conv2_00``..).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ParameterConvolution"]


def _conv_pool(x: np.ndarray, kernels: np.ndarray, block: int = 64) -> np.ndarray:
    """tanh(valid 1-D correlation of each row of x with each kernel), averaged over positions.

    Vectorized over kernels: the ``width``-wide windows of ``block`` rows form one
    ``(block * positions, width)`` matrix, multiplied once by all kernels (BLAS); tanh(a) is
    evaluated as ``1 - 2 / (exp(2a) + 1)`` in place (numpy's float32 ``exp`` is vectorized,
    its ``tanh`` much slower; they agree to float32 rounding). Blocks keep the
    ``(block * positions, kernels)`` products in cache. Measured 2.2-2.4x the per-kernel loop
    it replaced (CPU time, 63 inputs, 64 kernels; benchmarks/so2_predict.py).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.asarray(x, dtype=np.float32)
    n, f = x.shape
    k, w = kernels.shape
    if f < w:
        raise ValueError(f"parameter convolution: {f} features are fewer than the window width {w}")
    npos = f - w + 1
    out = np.empty((n, k), dtype=np.float32)
    k2t = np.ascontiguousarray(2.0 * np.asarray(kernels, dtype=np.float32).T)
    acc = np.empty((block * npos, k), dtype=np.float32)
    for a in range(0, n, block):
        xb = x[a : a + block]
        c = len(xb)
        windows = np.ascontiguousarray(sliding_window_view(xb, w, axis=1)).reshape(-1, w)
        part = acc[: c * npos]
        np.matmul(windows, k2t, out=part)
        with np.errstate(over="ignore"):  # exp overflows to inf: tanh = 1 exactly
            np.exp(part, out=part)
        part += 1.0
        np.divide(2.0, part, out=part)
        out[a : a + c] = 1.0 - part.reshape(c, npos, k).mean(axis=1)
    return out


class ParameterConvolution:
    """Two-stage 1 x ``width`` convolution over the normalized feature vector.

    Parameters
    ----------
    m1, m2 : int
        Number of stage-1 and stage-2 kernels (= derived features), 64 and 16 in the paper.
    width : int
        Window width (3 in the paper).
    seed : int
        Seed of the kernels.
    """

    def __init__(self, m1: int = 64, m2: int = 16, width: int = 3, seed: int = 0):
        self.m1, self.m2, self.width, self.seed = int(m1), int(m2), int(width), int(seed)
        if self.m1 < self.width:
            raise ValueError(f"m1 ({m1}) must be at least the window width ({width})")
        rng = np.random.default_rng(self.seed)
        self.k1 = rng.standard_normal((self.m1, self.width)).astype(np.float32)
        self.k2 = rng.standard_normal((self.m2, self.width)).astype(np.float32)
        self.lo: np.ndarray | None = None
        self.span: np.ndarray | None = None
        self.fill: np.ndarray | None = None

    @property
    def columns(self) -> list[str]:
        return [f"conv1_{i:02d}" for i in range(self.m1)] + [
            f"conv2_{i:02d}" for i in range(self.m2)
        ]

    def fit(self, X: np.ndarray) -> ParameterConvolution:
        """Learn the min-max range and the fill value of each column of ``X`` (n, F)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(
                f"parameter convolution: expected a non-empty (n, F) matrix; found {X.shape}"
            )
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo = np.nanmin(X, axis=0)
                hi = np.nanmax(X, axis=0)
                med = np.nanmedian(X, axis=0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        span = np.where(np.isfinite(hi) & (hi > lo), hi - lo, 1.0)
        self.lo, self.span = lo, span
        self.fill = np.where(np.isfinite(med), np.clip((med - lo) / span, 0, 1), 0.0)
        return self

    def normalize(self, X: np.ndarray) -> np.ndarray:
        if self.lo is None:
            raise RuntimeError("ParameterConvolution: call fit() before transform()")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.lo):
            raise ValueError(
                f"parameter convolution: fitted on {len(self.lo)} features; found {X.shape}"
            )
        Z = np.clip((X - self.lo) / self.span, 0.0, 1.0)
        Z = np.where(np.isfinite(Z), Z, self.fill)
        return Z.astype(np.float32)

    def transform(self, X: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """The ``m1 + m2`` derived features of each row of ``X`` (float32, (n, m1 + m2)).

        The small products run single-threaded in BLAS (threads would only spin: the
        caller parallelizes over tiles instead)."""
        from threadpoolctl import threadpool_limits

        X = np.asarray(X)
        out = np.empty((X.shape[0], self.m1 + self.m2), dtype=np.float32)
        with threadpool_limits(1, user_api="blas"):
            self._transform(X, out, chunk)
        return out

    def _transform(self, X: np.ndarray, out: np.ndarray, chunk: int) -> None:
        for a in range(0, X.shape[0], chunk):
            z = self.normalize(X[a : a + chunk])
            h1 = _conv_pool(z, self.k1)
            h2 = _conv_pool(h1, self.k2)
            out[a : a + chunk, : self.m1] = h1
            out[a : a + chunk, self.m1 :] = h2

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that reproduce this object (for storing with the model)."""
        return {
            "conv_k1": self.k1,
            "conv_k2": self.k2,
            "conv_lo": self.lo,
            "conv_span": self.span,
            "conv_fill": self.fill,
            "conv_meta": np.array([self.m1, self.m2, self.width, self.seed]),
        }

    @classmethod
    def from_state(cls, st) -> ParameterConvolution:
        m1, m2, width, seed = (int(v) for v in st["conv_meta"])
        obj = cls(m1, m2, width, seed)
        obj.k1 = np.asarray(st["conv_k1"], dtype=np.float32)
        obj.k2 = np.asarray(st["conv_k2"], dtype=np.float32)
        obj.lo, obj.span, obj.fill = (
            np.asarray(st[k]) for k in ("conv_lo", "conv_span", "conv_fill")
        )
        return obj
