"""Spatial sampling (Method A, 3.1.1; mechanics ours, see Spec A.6).

Two parts, switched on and off together:

1. **Neighbourhood statistics** of the dynamic fields: the mean of the ``k x k`` cells
   centred on a pixel (``k`` = 3 and 5 by default), over the valid (non-NaN) cells that lie
   inside the grid; NaN when none is valid. Columns are named ``<var>_m<k>``.
   :func:`neighbourhood_mean` computes it on whole fields (prediction tiles) and
   :func:`window_mean_at` at selected pixels (station rows); both sum the same cells in the
   same order, so the two agree bit for bit.
2. **Upwind sampling** of static layers (emission proxies such as population and roads):
   the ``k x k`` mean of the layer at the cell ``d`` km upwind of the pixel, along the
   day's 10 m wind at the pixel (:func:`upwind_offsets`); columns ``<var>_up<d>``. Surface
   SO2 at a site is made by the emissions the wind brings to it, not by those around it in
   every direction. The offset is rounded to whole cells and clipped to the grid.
3. **Spatially declustered training rows** (optional): stations crowd into cities, so rows
   are weighted by ``1 / (number of stations in the same cell of `cell_deg` degrees)``,
   normalized to mean 1 (:func:`decluster_weights`). A dense cluster of stations then counts
   as much as one isolated station of the same cell size, in the LightGBM training loss.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "KM_PER_DEG",
    "neighbourhood_mean",
    "window_mean_at",
    "spatial_columns",
    "upwind_columns",
    "upwind_offsets",
    "decluster_weights",
]

#: km per degree of latitude (mean Earth radius 6371 km).
KM_PER_DEG = 111.195


def spatial_columns(variables, sizes) -> list[str]:
    """Column names of the neighbourhood means, variable-major."""
    return [f"{v}_m{k}" for v in variables for k in sizes]


def upwind_columns(variables, distances_km) -> list[str]:
    """Column names of the upwind samples, variable-major (``population_up3``)."""
    return [f"{v}_up{d:g}" for v in variables for d in distances_km]


def upwind_offsets(u, v, dist_km: float, lat, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Whole-cell ``(drow, dcol)`` from a pixel to the point ``dist_km`` upwind of it.

    Parameters
    ----------
    u, v : array-like
        Eastward and northward wind (any speed unit; only the direction is used). Calm or
        missing wind gives offset 0 (the pixel itself).
    dist_km : float
        Distance upwind.
    lat : array-like
        Latitude of the pixels (deg; sets the km per cell along longitude).
    res : float
        Grid resolution (deg). Rows run south (row + 1 is 1 cell further south).
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    speed = np.hypot(u, v)
    ok = np.isfinite(speed) & (speed > 1e-6)
    ex = np.where(ok, u / np.where(ok, speed, 1.0), 0.0)
    ey = np.where(ok, v / np.where(ok, speed, 1.0), 0.0)
    km_y = res * KM_PER_DEG
    km_x = km_y * np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64)))
    # upwind = against the wind: south (row +) when the wind blows north (v > 0)
    drow = np.rint(ey * dist_km / km_y).astype(np.int64)
    dcol = np.rint(-ex * dist_km / km_x).astype(np.int64)
    return drow, dcol


def _check_size(size: int) -> int:
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"neighbourhood size must be an odd positive integer; found {size}")
    return size


def _box_sums(a: np.ndarray, size: int) -> np.ndarray:
    """Sum over the size x size box around each cell of the last two axes (zero padded)."""
    h = size // 2
    pad = [(0, 0)] * (a.ndim - 2) + [(h, h), (h, h)]
    p = np.pad(a, pad)
    ny, nx = a.shape[-2:]
    rows = p[..., 0:ny, :].copy()
    for i in range(1, size):
        rows += p[..., i : i + ny, :]
    out = rows[..., :, 0:nx].copy()
    for j in range(1, size):
        out += rows[..., :, j : j + nx]
    return out


def neighbourhood_mean(field: np.ndarray, size: int) -> np.ndarray:
    """NaN-aware ``size x size`` mean over the last two axes of ``field``.

    Cells outside the array and NaN cells are left out of the mean; a cell whose window
    holds no valid value is NaN. Returns float32.
    """
    size = _check_size(size)
    f = np.asarray(field, dtype=np.float64)
    ok = np.isfinite(f)
    s = _box_sums(np.where(ok, f, 0.0), size)
    n = _box_sums(ok.astype(np.float64), size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.where(n > 0, n, 1.0), np.nan).astype(np.float32)


def window_mean_at(field: np.ndarray, rows, cols, size: int) -> np.ndarray:
    """The :func:`neighbourhood_mean` of ``field (..., ny, nx)`` at pixels ``(rows, cols)``.

    Returns an array ``(..., npoints)``; only the windows around the points are read.
    """
    size = _check_size(size)
    h = size // 2
    f = np.asarray(field, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    ny, nx = f.shape[-2:]
    p = np.pad(f, [(0, 0)] * (f.ndim - 2) + [(h, h), (h, h)], constant_values=np.nan)
    # the same summation order as _box_sums: rows of the window first, then columns
    s = np.zeros(f.shape[:-2] + (len(rows),), dtype=np.float64)
    n = np.zeros_like(s)
    col_s = []
    col_n = []
    for j in range(size):
        cs = np.zeros_like(s)
        cn = np.zeros_like(s)
        for i in range(size):
            v = p[..., rows + i, cols + j]
            ok = np.isfinite(v)
            cs += np.where(ok, v, 0.0)
            cn += ok
        col_s.append(cs)
        col_n.append(cn)
    s = col_s[0].copy()
    n = col_n[0].copy()
    for j in range(1, size):
        s += col_s[j]
        n += col_n[j]
    if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= ny or cols.max() >= nx):
        raise IndexError(f"pixels outside the field of shape {(ny, nx)}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.where(n > 0, n, 1.0), np.nan).astype(np.float32)


def decluster_weights(lon, lat, cell_deg: float) -> np.ndarray:
    """Per-row weight 1 / (distinct stations in the row's ``cell_deg`` cell), mean 1.

    ``lon``/``lat`` are the rows' station coordinates (a station's rows share them).
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if len(lon) == 0:
        return np.ones(0, dtype=np.float32)
    if cell_deg <= 0:
        raise ValueError(f"cell_deg must be > 0; found {cell_deg}")
    cx = np.floor(lon / cell_deg).astype(np.int64)
    cy = np.floor(lat / cell_deg).astype(np.int64)
    cell = cy * 10_000_000 + cx
    pts = np.unique(np.stack([cell, np.round(lon, 6) * 1e6, np.round(lat, 6) * 1e6], 1), axis=0)
    cells, per_cell = np.unique(pts[:, 0].astype(np.int64), return_counts=True)
    w = 1.0 / per_cell[np.searchsorted(cells, cell)]
    return (w / w.mean()).astype(np.float32)
