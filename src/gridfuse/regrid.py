"""Regridding from a regular lat/lon grid to a target :class:`~gridfuse.grid.Grid`.

Methods: ``nearest``, ``bilinear`` and ``cubic`` (cubic convolution, Keys kernel with
``a = -0.5``, as GDAL).  Both grids are regular in lat/lon, so every method is
*separable*: an output value is ``sum_ij wy[r, i] * wx[c, j] * X[iy[r, i], ix[c, j]]``
with per-axis source indices and weights that are built once (:func:`axis_weights`) and
applied to blocks of days.  The per-axis weights are stored as "taps" (2 for bilinear,
4 for cubic) and turned into narrow dense bands (:meth:`AxisWeights.bands`), so one day is
two sequences of small float32 matrix products ``Wy_band @ (X @ Wx_band^T)``; nearest is
two index gathers (columns of the few source rows, then whole output rows).

Geometry (matches GDAL's warper for same-CRS grids)
----------------------------------------------------
A destination cell centre ``x`` has the fractional source pixel coordinate
``u = (x - e0) / step`` where ``e0`` is the outer edge of the first source cell (source
pixel centres sit at ``u = i + 0.5``).  Source grids are handled in north-up orientation
(longitude ascending, latitude descending; other orientations are flipped internally).

- **Outside the source**: a destination centre with ``u < 0`` or ``u >= n`` on either axis
  gets NaN for every method.
- **nearest**: the cell ``floor(u + 1e-9)``.  *Ties* (a destination centre exactly on a
  source cell edge) therefore go to the cell **east** (longitude) or **south** (latitude)
  of the edge, as in GDAL (which adds 1e-10 pixel before flooring) and
  :meth:`gridfuse.grid.Grid.rowcol`.
- **bilinear**: taps ``i0 = floor(u - 0.5)`` and ``i0 + 1`` with weights ``1 - f`` and ``f``.
  Taps outside the source are dropped and the remaining weight renormalized, so within half
  a source cell of the source edge the edge value is held constant (GDAL does the same).
- **cubic**: taps ``i0 - 1 .. i0 + 2`` with the Keys weights (a = -0.5), which sum to 1.
  Where the 4-tap footprint leaves the source (within 1.5 source cells of its edge) that
  axis falls back to the bilinear taps; GDAL falls back to bilinear on *both* axes there,
  so the two agree everywhere except in that border strip.
- Intended for *upsampling* (source cells larger than target cells, the case of every
  gridfuse source).  For a finer source, GDAL widens the kernel to average; this module
  does not, it interpolates point values.

NaN rule
--------
The rule of GDAL's warper for masked (nodata) source cells, checked against it on real
CHIRPS fields with ocean nodata.  (GDAL, when not given a mask, lets NaN propagate through
its arithmetic to every cell whose kernel touches one, which loses far more data.)

- **every method**: a destination cell is NaN where the source cell *containing* its
  centre (the one nearest picks) is NaN, so NaN areas keep the outline nearest gives them
  and are neither filled nor grown.
- **bilinear**: elsewhere, a weighted mean over the *valid* (finite) neighbours: the
  weights of NaN neighbours are dropped and the rest renormalized.
- **cubic**: elsewhere, where any neighbour with a non-zero cubic weight is NaN, the cell
  takes the bilinear value (cubic weights are partly negative, so renormalizing them over a
  subset is unstable).

Performance and memory
----------------------
Arrays are processed per day in float32 with BLAS limited to one thread per worker, and
days are split over ``threads`` worker threads.  Memory beyond input and output is a few
days of intermediates.  For files, open the source with dask chunks over time and call
:func:`regrid`: the result is a lazy dataset that :func:`gridfuse.io.write_netcdf`
streams to disk chunk by chunk, so a full-size year never sits in memory.

Wind direction
--------------
A wind direction (``wd``) cannot be interpolated as a scalar (350 deg and 10 deg would
average to 180 deg).  :func:`regrid` by default recomputes it from the regridded ``u10``
and ``v10`` (meteorological convention: the direction the wind blows *from*, degrees
clockwise from north); counts such as ``n_pixels`` use nearest by default
(:data:`DEFAULT_VARIABLE_METHODS`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import xarray as xr

from .grid import Grid

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "FROM_UV",
    "DEFAULT_VARIABLE_METHODS",
    "cubic_kernel",
    "AxisWeights",
    "axis_weights",
    "Regridder",
    "regrid",
    "regrid_at_points",
    "wind_direction",
    "spatial_dims",
]

METHODS = ("nearest", "bilinear", "cubic")
FROM_UV = "from_uv"
"""Per-variable "method" recomputing a wind direction from the regridded u and v."""

DEFAULT_VARIABLE_METHODS: dict[str, str] = {"n_pixels": "nearest", "wd": FROM_UV}
"""Per-variable overrides applied by :func:`regrid` unless the caller gives others."""

_EPS_TIE = 1e-9  # pixel fraction: nearest ties go to the higher index (east / south)
_MIN_WEIGHT = 1e-6  # NaN where the valid neighbours' total weight is below this
_LAT_NAMES = ("lat", "latitude", "y")
_LON_NAMES = ("lon", "longitude", "x")


def cubic_kernel(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys cubic convolution kernel ``W(x)`` (``a = -0.5`` as GDAL); zero for |x| >= 2."""
    x = np.abs(np.asarray(x, dtype="f8"))
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


# --------------------------------------------------------------------------- axis weights
@dataclass(frozen=True)
class AxisWeights:
    """Interpolation taps along one axis.

    Attributes
    ----------
    index : ndarray, int64, shape (n_dst, taps)
        Source indices (into the source axis in its *given* order).
    weight : ndarray, float64, shape (n_dst, taps)
        Weights; 0 for unused taps.  Rows of destination cells inside the source sum to 1.
    inside : ndarray, bool, shape (n_dst,)
        Destination centre lies inside the source extent.
    n_src : int
        Length of the source axis.
    """

    index: np.ndarray
    weight: np.ndarray
    inside: np.ndarray
    n_src: int

    @property
    def n_dst(self) -> int:
        return self.index.shape[0]

    def matrix(self) -> np.ndarray:
        """The dense ``(n_dst, n_src)`` weight matrix (for tests and small grids)."""
        m = np.zeros((self.n_dst, self.n_src))
        rows = np.repeat(np.arange(self.n_dst), self.index.shape[1])
        np.add.at(m, (rows, self.index.ravel()), self.weight.ravel())
        return m

    def support(self) -> AxisWeights:
        """Same taps with weight 1 where the weight is non-zero (counts neighbours)."""
        return AxisWeights(self.index, (self.weight != 0).astype("f8"), self.inside, self.n_src)

    def bands(self, block: int = 64) -> list[tuple[int, int, int, int, np.ndarray]]:
        """Split into dense blocks ``(d0, d1, s0, s1, W)``, ``W`` float32 ``(d1-d0, s1-s0)``.

        Destination rows ``d0:d1`` only read source rows ``s0:s1``; blocks without any
        non-zero weight are left out (their destination cells are outside the source).
        """
        out = []
        for d0 in range(0, self.n_dst, block):
            d1 = min(self.n_dst, d0 + block)
            idx, w = self.index[d0:d1], self.weight[d0:d1]
            used = w != 0
            if not used.any():
                continue
            s0, s1 = int(idx[used].min()), int(idx[used].max()) + 1
            dense = np.zeros((d1 - d0, s1 - s0), dtype="f8")
            rows = np.broadcast_to(np.arange(d1 - d0)[:, None], idx.shape)
            np.add.at(dense, (rows[used], idx[used] - s0), w[used])
            out.append((d0, d1, s0, s1, dense.astype("f4")))
        return out


def _regular_step(src: np.ndarray, name: str) -> float:
    if src.ndim != 1 or src.size < 2:
        raise ValueError(f"source {name} must be 1-D with at least 2 cells, got shape {src.shape}")
    step = (src[-1] - src[0]) / (src.size - 1)
    dev = np.abs(np.diff(src) - step).max()
    if step == 0 or dev > 1e-3 * abs(step):
        raise ValueError(
            f"source {name} is not a regular axis: step {step!r}, largest deviation {dev!r} "
            f"(first values {src[:4].tolist()})"
        )
    return float(step)


def axis_weights(
    src: Sequence[float],
    dst: Sequence[float],
    method: str,
    *,
    descending: bool = False,
    name: str = "axis",
) -> AxisWeights:
    """Taps and weights mapping a regular source axis onto destination points.

    Parameters
    ----------
    src : array-like
        Regular source cell centres (either order).
    dst : array-like
        Destination cell centres.
    method : {"nearest", "bilinear", "cubic"}
    descending : bool
        Orientation in which ties and edges are defined: ``False`` for longitude
        (ascending, ties go east), ``True`` for latitude (descending, ties go south).
    name : str
        Axis name for error messages.
    """
    if method not in METHODS:
        raise ValueError(f"unknown regrid method {method!r}; expected one of {METHODS}")
    src = np.asarray(src, dtype="f8")
    dst = np.asarray(dst, dtype="f8")
    step = _regular_step(src, name)
    n = src.size
    flip = (step < 0) != descending
    if flip:
        src, step = src[::-1], -step
    u = (dst - (src[0] - step / 2)) / step  # fractional source pixel, centres at i + 0.5
    inside = (u >= -_EPS_TIE) & (u < n - _EPS_TIE)
    if method == "nearest":
        idx = np.clip(np.floor(u + _EPS_TIE), 0, n - 1).astype("i8")[:, None]
        w = np.ones_like(idx, dtype="f8")
    else:
        v = u - 0.5
        i0 = np.floor(v)
        f = v - i0
        i0 = i0.astype("i8")
        lin_idx = np.stack([i0, i0 + 1], axis=1)
        lin_w = np.stack([1 - f, f], axis=1)
        if method == "bilinear":
            idx, w = lin_idx, lin_w
        else:
            idx = np.stack([i0 - 1, i0, i0 + 1, i0 + 2], axis=1)
            w = cubic_kernel(np.stack([f + 1, f, 1 - f, 2 - f], axis=1))
            edge = (i0 - 1 < 0) | (i0 + 2 > n - 1)
            idx = np.where(edge[:, None], np.pad(lin_idx, ((0, 0), (0, 2)), mode="edge"), idx)
            w = np.where(edge[:, None], np.pad(lin_w, ((0, 0), (0, 2))), w)
        valid = (idx >= 0) & (idx < n)
        w = np.where(valid, w, 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        idx = np.clip(idx, 0, n - 1)
    w = np.where(inside[:, None], w, 0.0)
    if flip:
        idx = n - 1 - idx
    return AxisWeights(idx, w, inside, n)


# --------------------------------------------------------------------------- regridder
def _as_float32(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == np.float32 else a.astype("f4")


class Regridder:
    """Separable regridding operator from a regular source lat/lon grid to a :class:`Grid`.

    Build once per (source grid, target grid, method) and apply to any number of
    ``(..., lat, lon)`` arrays.

    Parameters
    ----------
    src_lat, src_lon : array-like
        Regular source cell centres (latitude in either order, longitude ascending or
        descending; the spacing may differ between the axes).
    grid : Grid
        Target grid.
    method : {"nearest", "bilinear", "cubic"}
    block : int
        Destination cells per dense band of the weight matrices.

    Examples
    --------
    >>> rg = Regridder(src.lat, src.lon, Grid.preset("qinghai"), "bilinear")
    >>> fine = rg(coarse_values, threads=2)          # (time, 850, 1390) float32
    """

    def __init__(self, src_lat, src_lon, grid: Grid, method: str = "nearest", *, block=64):
        if method not in METHODS:
            raise ValueError(f"unknown regrid method {method!r}; expected one of {METHODS}")
        self.method = method
        self.grid = grid
        self.src_lat = np.asarray(src_lat, dtype="f8")
        self.src_lon = np.asarray(src_lon, dtype="f8")
        self.block = block
        self.wy = axis_weights(self.src_lat, grid.lat, method, descending=True, name="lat")
        self.wx = axis_weights(self.src_lon, grid.lon, method, descending=False, name="lon")
        self.shape_in = (self.src_lat.size, self.src_lon.size)
        self.shape_out = grid.shape
        self._rows_out = ~self.wy.inside
        self._cols_out = ~self.wx.inside
        if self._rows_out.all() or self._cols_out.all():
            logger.warning(
                "target grid %s lies outside the source grid (lat %.4f..%.4f, lon %.4f..%.4f)",
                grid.bounds,
                self.src_lat.min(),
                self.src_lat.max(),
                self.src_lon.min(),
                self.src_lon.max(),
            )

    def __repr__(self) -> str:
        # no "-" here: dask derives task names from it and splits them on "-"
        (a, b), (c, d) = self.shape_in, self.shape_out
        return f"Regridder({self.method} {a}x{b} to {c}x{d})"

    # ------------------------------------------------------------------ operators
    @cached_property
    def _bands(self):
        return self.wy.bands(self.block), self.wx.bands(self.block)

    @cached_property
    def _support_bands(self):
        return self.wy.support().bands(self.block), self.wx.support().bands(self.block)

    @cached_property
    def _bilinear(self) -> Regridder:
        return Regridder(self.src_lat, self.src_lon, self.grid, "bilinear", block=self.block)

    @cached_property
    def _nearest(self) -> Regridder:
        return Regridder(self.src_lat, self.src_lon, self.grid, "nearest", block=self.block)

    @cached_property
    def _used(self) -> tuple[int, int, int, int]:
        """Source rows ``r0:r1`` and columns ``c0:c1`` read with a non-zero weight."""

        def span(w: AxisWeights) -> tuple[int, int]:
            idx = w.index[w.weight != 0]
            return (int(idx.min()), int(idx.max()) + 1) if idx.size else (0, 0)

        return (*span(self.wy), *span(self.wx))

    @staticmethod
    def _apply_bands(x2d: np.ndarray, bands, out: np.ndarray, tmp: np.ndarray) -> None:
        """``out = Wy @ x2d @ Wx^T`` with banded ``Wy``/``Wx`` (tmp: ``(ny, nlon)``)."""
        ybands, xbands = bands
        tmp[...] = 0.0
        for c0, c1, s0, s1, w in xbands:
            np.matmul(x2d[:, s0:s1], w.T, out=tmp[:, c0:c1])
        out[...] = 0.0
        for r0, r1, s0, s1, w in ybands:
            np.matmul(w, tmp[s0:s1], out=out[r0:r1])

    def _day(self, x: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        """Regrid one ``(ny, nx)`` float32 field into ``out`` ``(nlat, nlon)``."""
        if self.method == "nearest":
            np.take(x, self.wx.index[:, 0], axis=1, out=tmp)
            np.take(tmp, self.wy.index[:, 0], axis=0, out=out)
        else:
            r0, r1, c0, c1 = self._used
            if np.isfinite(x[r0:r1, c0:c1]).all():  # NaNs elsewhere are never read
                self._apply_bands(x, self._bands, out, tmp)
            else:
                ok = np.isfinite(x)
                if ok[r0:r1, c0:c1].any():
                    self._day_nan(x, ok, out, tmp)
                else:
                    out[...] = np.nan
        if self._rows_out.any():
            out[self._rows_out] = np.nan
        if self._cols_out.any():
            out[:, self._cols_out] = np.nan

    def _day_nan(self, x: np.ndarray, ok: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
        """Bilinear/cubic under the NaN rule (module docstring)."""
        x0 = np.where(ok, x, np.float32(0))
        mask = ok.astype("f4")
        self._apply_bands(x0, self._bands, out, tmp)
        den = np.empty_like(out)
        self._apply_bands(mask, self._bands, den, tmp)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(out, den, out=out)
        out[~(den > _MIN_WEIGHT)] = np.nan
        if self.method == "cubic":
            bad = np.empty_like(out)
            self._apply_bands(1 - mask, self._support_bands, bad, tmp)
            fallback = bad > 0.5
            if fallback.any():
                lin = np.empty_like(out)
                self._bilinear._day_nan(x, ok, lin, tmp)
                out[fallback] = lin[fallback]
        # NaN where the containing source cell is NaN (den is free again)
        self._nearest._day(1 - mask, den, tmp)
        out[den > 0.5] = np.nan

    def __call__(self, data, *, threads: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """Regrid ``(..., lat, lon)`` values; returns ``(..., nlat, nlon)`` float32.

        Parameters
        ----------
        data : array-like
            Values on the source grid, last two axes ``(lat, lon)`` in the order of the
            coordinates given at construction.
        threads : int
            Worker threads over the leading (time) axis; BLAS is limited to one thread
            per worker meanwhile.
        out : ndarray, optional
            float32 array of the output shape to write into.
        """
        from threadpoolctl import threadpool_limits

        data = np.asarray(data)
        if data.shape[-2:] != self.shape_in:
            raise ValueError(
                f"regrid input has spatial shape {data.shape[-2:]}, expected {self.shape_in} "
                f"(lat, lon) of the source grid"
            )
        lead = data.shape[:-2]
        x = _as_float32(data.reshape((-1,) + self.shape_in))
        shape = lead + self.shape_out
        if out is None:
            out = np.empty(shape, dtype="f4")
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
        o = out.reshape((-1,) + self.shape_out)
        n = x.shape[0]
        threads = max(1, min(int(threads), n))

        def work(part: range) -> None:
            tmp = np.empty((self.shape_in[0], self.shape_out[1]), dtype="f4")
            for t in part:
                self._day(x[t], o[t], tmp)

        with threadpool_limits(1, user_api="blas"):
            if threads == 1:
                work(range(n))
            else:
                bounds = np.linspace(0, n, threads + 1).round().astype(int)
                parts = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(work, parts))
        return out

    # ------------------------------------------------------------------ points
    def at_points(self, data, rows, cols) -> np.ndarray:
        """Regridded values only at target cells ``(rows[k], cols[k])``: ``(..., n_points)``.

        Equals ``self(data)[..., rows, cols]`` (same NaN rule) at a cost proportional to
        the number of points, not the grid size.
        """
        data = np.asarray(data)
        if data.shape[-2:] != self.shape_in:
            raise ValueError(
                f"at_points input has spatial shape {data.shape[-2:]}, expected {self.shape_in}"
            )
        rows = np.asarray(rows, dtype="i8")
        cols = np.asarray(cols, dtype="i8")
        if rows.shape != cols.shape or rows.ndim != 1:
            raise ValueError(
                f"rows and cols must be 1-D of equal length: {rows.shape}, {cols.shape}"
            )
        if rows.size and (
            rows.min() < 0
            or rows.max() >= self.shape_out[0]
            or cols.min() < 0
            or cols.max() >= self.shape_out[1]
        ):
            raise ValueError(f"points outside the target grid {self.shape_out}")
        lead = data.shape[:-2]
        x = _as_float32(data.reshape((-1,) + self.shape_in))
        val = self._points(x, self.wy, self.wx, rows, cols)
        if self.method == "cubic":
            sy, sx = self.wy.support(), self.wx.support()
            bad = self._points(
                (~np.isfinite(x)).astype("f4"), sy, sx, rows, cols, renormalize=False
            )
            fallback = bad > 0.5
            if fallback.any():
                lin = self._bilinear._points(x, self._bilinear.wy, self._bilinear.wx, rows, cols)
                val = np.where(fallback, lin, val)
        if self.method != "nearest":
            iy, ix = self._nearest.wy.index[rows, 0], self._nearest.wx.index[cols, 0]
            val[np.isnan(x[:, iy, ix])] = np.nan
        outside = self._rows_out[rows] | self._cols_out[cols]
        val[:, outside] = np.nan
        return val.reshape(lead + rows.shape)

    @staticmethod
    def _points(x, wy, wx, rows, cols, *, renormalize=True) -> np.ndarray:
        iy, ix = wy.index[rows], wx.index[cols]  # (S, ty), (S, tx)
        w = wy.weight[rows][:, :, None] * wx.weight[cols][:, None, :]  # (S, ty, tx)
        vals = x[:, iy[:, :, None], ix[:, None, :]].astype("f8")  # (T, S, ty, tx)
        if not renormalize:
            return np.einsum("tsij,sij->ts", vals, w)
        ok = np.isfinite(vals)
        num = np.einsum("tsij,sij->ts", np.where(ok, vals, 0.0), w)
        den = np.einsum("tsij,sij->ts", ok.astype("f8"), w)
        with np.errstate(invalid="ignore", divide="ignore"):
            res = num / den
        res[~(den > _MIN_WEIGHT)] = np.nan
        return res


# --------------------------------------------------------------------------- xarray layer
def spatial_dims(obj: xr.DataArray | xr.Dataset) -> tuple[str, str]:
    """Names of the latitude and longitude dimensions (``lat``/``latitude``/``y``, ...)."""
    dims = set(obj.dims)
    lat = next((d for d in _LAT_NAMES if d in dims), None)
    lon = next((d for d in _LON_NAMES if d in dims), None)
    if lat is None or lon is None:
        raise ValueError(
            f"cannot find latitude/longitude dimensions among {sorted(map(str, dims))}; "
            f"expected one of {_LAT_NAMES} and one of {_LON_NAMES}"
        )
    return lat, lon


def wind_direction(u, v):
    """Meteorological wind direction (deg, blowing *from*, clockwise from north) of u, v."""
    return np.mod(180.0 + np.degrees(np.arctan2(u, v)), 360.0)


def _regrid_array(
    da: xr.DataArray, rg: Regridder, lat: str, lon: str, grid: Grid, threads: int
) -> xr.DataArray:
    da = da.transpose(..., lat, lon)
    if da.chunks is not None:
        da = da.chunk({lat: -1, lon: -1})
        res = xr.apply_ufunc(
            rg,
            da,
            input_core_dims=[[lat, lon]],
            output_core_dims=[["lat", "lon"]],
            exclude_dims={lat, lon},
            dask="parallelized",
            output_dtypes=[np.float32],
            dask_gufunc_kwargs={"output_sizes": {"lat": grid.nlat, "lon": grid.nlon}},
            keep_attrs=True,
        )
    else:
        values = rg(da.values, threads=threads)
        dims = da.dims[:-2] + ("lat", "lon")
        coords = {k: v for k, v in da.coords.items() if lat not in v.dims and lon not in v.dims}
        res = xr.DataArray(values, dims=dims, coords=coords, attrs=da.attrs, name=da.name)
    return res.assign_coords(grid.coords())


def regrid(
    obj: xr.DataArray | xr.Dataset,
    grid: Grid,
    method: str = "nearest",
    *,
    methods: Mapping[str, str] | None = None,
    threads: int = 1,
) -> xr.DataArray | xr.Dataset:
    """Regrid a DataArray or every gridded variable of a Dataset to ``grid``.

    Parameters
    ----------
    obj : DataArray or Dataset
        Values on a regular source lat/lon grid (dimension names ``lat``/``lon``,
        ``latitude``/``longitude`` or ``y``/``x``), any leading dimensions (time).
        Dask-backed inputs give dask-backed outputs (one task per chunk of the leading
        dimensions; the spatial dimensions are merged into one chunk).
    grid : Grid
        Target grid.
    method : {"nearest", "bilinear", "cubic"}
        Method for every variable not named in ``methods``.
    methods : mapping, optional
        Per-variable method overrides; :data:`DEFAULT_VARIABLE_METHODS` when ``None``
        (``n_pixels`` nearest, ``wd`` from u10/v10).  The value ``"from_uv"`` recomputes a
        wind direction from the regridded ``u10`` and ``v10`` (falls back to ``method``
        when either is missing).
    threads : int
        Worker threads for eager (numpy-backed) inputs.

    Returns
    -------
    Same type as ``obj``, on ``grid`` (``lat`` descending, ``lon`` ascending), float32.
    Variables without spatial dimensions are carried over unchanged; variables along only
    one of them (e.g. ``lat_bnds``) are dropped.
    """
    methods = dict(DEFAULT_VARIABLE_METHODS if methods is None else methods)
    for m in {method, *methods.values()}:
        if m not in METHODS and m != FROM_UV:
            raise ValueError(f"unknown regrid method {m!r}; expected one of {METHODS}")
    lat, lon = spatial_dims(obj)
    src_lat, src_lon = obj[lat].values, obj[lon].values
    cache: dict[str, Regridder] = {}

    def regridder(m: str) -> Regridder:
        if m not in cache:
            cache[m] = Regridder(src_lat, src_lon, grid, m)
        return cache[m]

    if isinstance(obj, xr.DataArray):
        m = methods.get(str(obj.name), method)
        return _regrid_array(obj, regridder(method if m == FROM_UV else m), lat, lon, grid, threads)

    out = {}
    from_uv = []
    dropped = []
    for name, da in obj.data_vars.items():
        if lat not in da.dims and lon not in da.dims:
            out[name] = da
            continue
        if lat not in da.dims or lon not in da.dims:  # e.g. lat_bnds: meaningless on the grid
            dropped.append(name)
            continue
        m = methods.get(str(name), method)
        if m == FROM_UV and {"u10", "v10"} <= set(obj.data_vars):
            from_uv.append(name)
            continue
        m = method if m == FROM_UV else m
        out[name] = _regrid_array(da, regridder(m), lat, lon, grid, threads)
        logger.debug("regridded %s %s by %s", name, tuple(da.shape), m)
    for name in from_uv:
        wd = wind_direction(out["u10"], out["v10"]).astype("f4")
        wd.attrs = dict(obj[name].attrs)
        wd.attrs["comment"] = "recomputed from the regridded u10 and v10"
        out[name] = wd
    if dropped:
        logger.info("dropped variables along only one spatial axis: %s", dropped)
    res = xr.Dataset(out, attrs=obj.attrs)
    res = res.drop_vars([c for c in (lat, lon) if c in res.coords and c not in ("lat", "lon")])
    res = res.assign_coords(grid.coords())
    return res[[v for v in obj.data_vars if v not in dropped]]


def regrid_at_points(
    obj: xr.DataArray,
    grid: Grid,
    rows,
    cols,
    method: str = "nearest",
) -> np.ndarray:
    """Regridded values of ``obj`` at target cells only: ``(..., n_points)`` float32/64.

    A cheap stand-in for ``regrid(obj, grid, method).values[..., rows, cols]`` (same
    result), used to score interpolation methods at stations.
    """
    lat, lon = spatial_dims(obj)
    rg = Regridder(obj[lat].values, obj[lon].values, grid, method)
    return rg.at_points(obj.transpose(..., lat, lon).values, rows, cols)


def to_geographic(da: xr.DataArray, crs, *, what: str = "") -> xr.DataArray:
    """A ``(..., y, x)`` array on a projected grid, reprojected to EPSG:4326 lon/lat.

    Parameters
    ----------
    da : xarray.DataArray
        Dims ending in ``y, x`` (cell centres in the CRS's units, a regular grid); NaN is
        missing.
    crs : anything :class:`pyproj.CRS` accepts
        The grid's projection (from the file's ``grid_mapping`` or GeoTIFF CRS).
    what : str
        The file (named in errors).

    Returns
    -------
    xarray.DataArray
        Dims ``(..., lat, lon)``, latitude descending, at GDAL's suggested lon/lat
        resolution, by nearest neighbour (values are never blended across cells).  The
        result is then regridded like any lon/lat source.
    """
    import rioxarray  # noqa: F401 - registers the .rio accessor
    from pyproj import CRS
    from rasterio.enums import Resampling

    try:
        crs = CRS.from_user_input(crs)
    except Exception as err:  # noqa: BLE001 - pyproj raises several types
        raise ValueError(f"{what}: CRS {crs!r} not understood ({err})") from err
    if crs.is_geographic:
        return da.rename({"y": "lat", "x": "lon"})
    for dim in ("y", "x"):
        c = np.asarray(da[dim].values, dtype="f8")
        if c.size < 2 or not np.allclose(np.diff(c), c[1] - c[0], rtol=1e-6, atol=1e-6):
            raise ValueError(f"{what}: projected {dim} coordinates are not a regular grid")
    src = da.astype("float32").rio.set_spatial_dims(x_dim="x", y_dim="y").rio.write_crs(crs)
    src = src.rio.write_nodata(np.nan, encoded=False)
    out = src.rio.reproject("EPSG:4326", resampling=Resampling.nearest, nodata=np.nan)
    out = out.drop_vars("spatial_ref", errors="ignore").rename({"y": "lat", "x": "lon"})
    if out["lat"].size > 1 and out["lat"].values[0] < out["lat"].values[-1]:
        out = out.isel(lat=slice(None, None, -1))
    logger.info("%s: reprojected from %s to EPSG:4326, %s", what, crs.name, dict(out.sizes))
    out.attrs = {k: v for k, v in da.attrs.items() if k != "grid_mapping"}
    return out.rename(da.name)
