"""Random fields, a synthetic DEM and grid-to-grid aggregation for the OSSE demos.

All generators take a :class:`numpy.random.Generator` so that every field is reproducible
from the configured seed.
"""

from __future__ import annotations

import logging

import numpy as np

from ..grid import Grid

logger = logging.getLogger(__name__)

__all__ = [
    "gaussian_field",
    "ar1_fields",
    "fractal_dem",
    "cell_index",
    "aggregation_matrix",
    "aggregate_mean",
    "KM_PER_DEG",
]

KM_PER_DEG = 111.195  # km per degree of latitude (mean Earth radius 6371 km)


def _spectral_filter(shape: tuple[int, int], corr_cells: float) -> np.ndarray:
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    # Gaussian covariance with e-folding length corr_cells -> Gaussian spectral amplitude
    return np.exp(-((np.pi * corr_cells) ** 2) * (kx**2 + ky**2) / 2.0)


def gaussian_field(
    shape: tuple[int, int], corr_cells: float, rng: np.random.Generator, n: int | None = None
) -> np.ndarray:
    """Stationary Gaussian random field(s) with unit variance and zero mean.

    Parameters
    ----------
    shape : (ny, nx)
        Field shape.
    corr_cells : float
        Correlation length in cells (Gaussian covariance); 0 gives white noise.
    rng : numpy.random.Generator
        Random source.
    n : int, optional
        Number of independent fields (result ``(n, ny, nx)``); default one ``(ny, nx)``.
    """
    k = 1 if n is None else n
    if corr_cells > 0:
        # pad to avoid periodic wrap-around correlation across opposite edges
        pad = int(min(3 * corr_cells, 2 * max(shape)))
        big = (shape[0] + pad, shape[1] + pad)
        filt = _spectral_filter(big, corr_cells)
        white = rng.standard_normal((k,) + big)
        field = np.fft.irfft2(np.fft.rfft2(white) * filt, s=big)[:, : shape[0], : shape[1]]
        # theoretical variance of filtered unit white noise: mean |filter|^2 over all
        # frequencies (the per-field sample mean and variance are left free)
        ky = np.fft.fftfreq(big[0])[:, None]
        kx = np.fft.fftfreq(big[1])[None, :]
        full = np.exp(-((np.pi * corr_cells) ** 2) * (kx**2 + ky**2) / 2.0)
        field /= np.sqrt(np.mean(full**2))
    else:
        field = rng.standard_normal((k,) + tuple(shape))
    return field[0] if n is None else field


def ar1_fields(
    n: int,
    shape: tuple[int, int],
    corr_cells: float,
    rho: float,
    rng: np.random.Generator,
    state: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit-variance fields correlated in time by an AR(1) with coefficient ``rho``.

    Returns ``(fields (n, ny, nx), last field)``; pass the last field as ``state`` to
    continue the sequence in the next block.
    """
    innov = gaussian_field(shape, corr_cells, rng, n=n)
    out = np.empty_like(innov)
    prev = state if state is not None else innov[0]
    scale = np.sqrt(1.0 - rho**2)
    for i in range(n):
        prev = rho * prev + scale * innov[i] if (i > 0 or state is not None) else innov[0]
        out[i] = prev
    return out, out[-1].copy()


def fractal_dem(
    grid: Grid,
    rng: np.random.Generator,
    *,
    base_m: float = 3000.0,
    relief_m: float = 600.0,
    beta: float = 3.2,
    valley_m: float = 700.0,
) -> np.ndarray:
    """A plausible high-plateau DEM (m) on ``grid``: fractal relief plus a broad valley.

    Power-law (``k^-beta``) relief with standard deviation ``relief_m`` around ``base_m``,
    and a Gaussian valley of depth ``valley_m`` running west-east through the middle (as
    the Huangshui valley at Xining); floored at 1500 m.
    """
    ny, nx = grid.shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k = np.sqrt(kx**2 + ky**2)
    k[0, 0] = 1.0
    amp = k ** (-beta / 2.0)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
    relief = np.fft.irfft2(spec, s=(ny, nx))
    relief = (relief - relief.mean()) / relief.std() * relief_m
    lat = grid.lat[:, None]
    mid = 0.5 * (grid.north + grid.south)
    width = 0.15 * (grid.north - grid.south) + 0.05
    valley = valley_m * np.exp(-0.5 * ((lat - mid) / width) ** 2)
    dem = base_m + relief - valley
    return np.maximum(dem, 1500.0).astype("f4")


def cell_index(fine: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the coarse cell (regular ``centres``, either order) holding each ``fine``
    centre; -1 outside.  A point on an edge goes to the cell of larger index (east, or
    south for descending latitudes, as :meth:`gridfuse.grid.Grid.rowcol`)."""
    centres = np.asarray(centres, dtype="f8")
    if centres.size < 2:
        raise ValueError("cell_index needs at least two coarse cells")
    d = centres[1] - centres[0]
    first_edge = centres[0] - d / 2
    idx = np.floor((np.asarray(fine, dtype="f8") - first_edge) / d + 1e-9).astype("i8")
    if d < 0:  # descending coordinates: index counts downward
        idx = np.floor((first_edge - np.asarray(fine, dtype="f8")) / -d + 1e-9).astype("i8")
    return np.where((idx >= 0) & (idx < centres.size), idx, -1)


def aggregation_matrix(fine: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(n_coarse, n_fine)`` matrix averaging fine cells into the coarse cell that holds
    their centre (rows sum to 1; a coarse cell with no fine cell is an error)."""
    idx = cell_index(fine, centres)
    m = np.zeros((centres.size, np.asarray(fine).size))
    ok = idx >= 0
    m[idx[ok], np.flatnonzero(ok)] = 1.0
    counts = m.sum(axis=1, keepdims=True)
    if np.any(counts == 0):
        bad = int(np.flatnonzero(counts[:, 0] == 0)[0])
        raise ValueError(
            f"coarse cell centred {centres[bad]} holds no fine cell (fine axis "
            f"{np.min(fine)}..{np.max(fine)})"
        )
    return m / counts


def aggregate_mean(
    field: np.ndarray,
    fine_lat: np.ndarray,
    fine_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
) -> np.ndarray:
    """Area mean (in cell counts) of ``field`` ``(..., ny, nx)`` over coarse cells.

    The coarse grid is regular with centres ``lat``/``lon``; each fine cell belongs to the
    coarse cell holding its centre.  Returns ``(..., len(lat), len(lon))`` float64.
    """
    mr = aggregation_matrix(fine_lat, lat)
    mc = aggregation_matrix(fine_lon, lon)
    return np.einsum("ij,...jk,lk->...il", mr, np.asarray(field, dtype="f8"), mc, optimize=True)
