"""Random pixel IDs (Method A, 3.1.2): a seeded permutation of the pixel index.

Pixel index = ``row * ncol + col`` on the product grid (row 0 = northernmost). The ID of a
pixel is ``perm[index] / (N - 1)``, min-max normalized to [0, 1], so it carries no spatial
order. The permutation is stored with the model (``save``/``load``) and the stored array is
what prediction uses, so IDs never depend on the numpy version that regenerates them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..io import atomic_path, save_npz

logger = logging.getLogger(__name__)

__all__ = ["RandomID"]


class RandomID:
    """Seeded random permutation of the pixels of a ``(nlat, nlon)`` grid.

    Parameters
    ----------
    shape : (nlat, nlon)
        Grid shape.
    seed : int
        Seed of the permutation.
    perm : ndarray, optional
        An existing permutation (from :meth:`load`); drawn from ``seed`` when omitted.
    """

    def __init__(self, shape: tuple[int, int], seed: int = 0, perm: np.ndarray | None = None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.seed = int(seed)
        n = self.shape[0] * self.shape[1]
        if perm is None:
            dtype = np.int32 if n < 2**31 else np.int64
            perm = np.random.default_rng(self.seed).permutation(n).astype(dtype)
        perm = np.asarray(perm)
        if perm.shape != (n,):
            raise ValueError(
                f"random ID permutation: expected {n} entries for grid {shape}; found {perm.shape}"
            )
        self.perm = perm

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def __call__(self, row, col) -> np.ndarray:
        """Normalized random ID (float32 in [0, 1]) of the pixels ``(row, col)``."""
        row = np.asarray(row, dtype=np.int64)
        col = np.asarray(col, dtype=np.int64)
        if row.size and (
            row.min() < 0
            or col.min() < 0
            or row.max() >= self.shape[0]
            or col.max() >= self.shape[1]
        ):
            raise IndexError(f"pixel (row, col) outside the grid {self.shape}")
        ids = self.perm[row * self.shape[1] + col].astype(np.float64)
        return (ids / max(self.size - 1, 1)).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Store shape, seed and the permutation (``.npz``, written atomically)."""
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            save_npz(f, perm=self.perm, shape=np.array(self.shape), seed=self.seed)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RandomID:
        with np.load(path) as z:
            return cls(tuple(z["shape"]), int(z["seed"]), perm=z["perm"])
