"""Station samples: values at station pixels, neighbourhood means, and patch cubes.

Point and neighbourhood extraction (any ``(..., lat, lon)`` field on the target grid):
:func:`station_cells`, :func:`values_at_pixels`, :func:`neighbourhood_means`,
:func:`extract_patches`.  Window arithmetic for training: :func:`window_index`,
:func:`window_span` and :class:`PatchSampler`.  :func:`write_samples` writes the two files of the precipitation
``samples_precip`` rule, and :func:`interpolation_scores` scores regridding methods at the
stations (``compare_interpolation_precip``).

Files in ``results/<product>/samples/``
---------------------------------------
``patches.nc`` (NetCDF4, one patch *per station*, not per sample):

- ``x`` float32 ``(station, time, py, px, channel)``: the ``patch`` x ``patch`` window of
  target-grid cells centred on the station's cell, for **every product day** of the
  period (one continuous time axis across years, so a window around 1 January reads the
  end of the previous year).  ``x[s, t, i, j, c]`` is channel ``c`` on day ``t`` at grid
  cell ``(row[s] + i - r, col[s] + j - r)`` with ``r = patch // 2``; ``x[s, t, r, r]`` is
  the station's own cell.
- channels (coordinate ``channel``, str): the source keys in config order (downscaled
  values, e.g. mm/day), then ``elevation`` (m, from ``static.nc``), ``lat`` and ``lon``
  (cell-centre degrees).  Static channels repeat over time.
- **NaN**: cells outside the grid (patches at the grid edge are padded with NaN in every
  channel); every day of a source-year that is absent (``gridfuse.io.is_absent``) or
  missing from the downscaled file; NaN values of the sources themselves.
- ``y`` float32 ``(station, time)``: the gauge value of the product day (NaN where the
  gauge has none).
- coordinates: ``station`` (str), ``time`` (datetime64, product days), ``py``/``px``
  (cell offsets ``-r..r``; ``py`` grows southwards), ``channel`` (str); per station
  ``role`` (``train``/``evaluation``), ``lat``/``lon`` (the station's own coordinates),
  ``row``/``col`` (its cell in the grid), ``elevation`` (the station's, m).
- attributes: ``patch``, ``window_days`` (the configured cube length).

A training sample is a (station, day) pair ``(s, t)``; its cube is
``x[s, t - w//2 : t + w//2 + 1]`` with ``w = window_days`` (7 by default: days t-3..t+3),
and days before the first or after the last product day are NaN.  :class:`PatchSampler`
does this arithmetic (one cube, or a vectorized batch).  A job that needs only some days
reads the slice :func:`window_span` gives (``PatchSampler.open(..., time=...)``): the cubes
of those days are the same as in the whole file.

``points.parquet`` (long table for tree and linear models): one row per station and
product day, columns ``station, date, role, target`` (the gauge value, NaN where missing),
one column per source (its value at the station's cell), ``elevation, lat, lon`` (of the
station's *cell*, as the same features are on the grid at prediction time), ``row, col``.
The values are exactly the patch centres ``x[s, t, r, r, :]``.

Stations outside the grid are left out of both files (logged).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .grid import Grid
from .io import atomic_path, is_absent, provenance, read_netcdf, values_at_cells
from .regrid import METHODS, Regridder, spatial_dims

logger = logging.getLogger(__name__)

__all__ = [
    "STATIC_CHANNELS",
    "station_cells",
    "values_at_pixels",
    "neighbourhood_means",
    "patch_indices",
    "extract_patches",
    "window_index",
    "window_span",
    "patch_times",
    "PatchSampler",
    "target_matrix",
    "write_samples",
    "interpolation_scores",
    "sources_by_year",
    "INTERPOLATION_COLUMNS",
]

STATIC_CHANNELS = ("elevation", "lat", "lon")
INTERPOLATION_COLUMNS = ["source", "method", "metric", "value", "n"]
_TIME_UNITS = "days since 1970-01-01"


# --------------------------------------------------------------------------- extraction
def station_cells(grid: Grid, stations: pd.DataFrame, *, drop_outside: bool = True) -> pd.DataFrame:
    """Stations with the ``row`` and ``col`` of the grid cell containing each.

    Stations outside the grid are dropped (``drop_outside``) or get ``row = col = -1``.
    The index is reset; the other columns are kept.
    """
    for col in ("station", "lat", "lon"):
        if col not in stations.columns:
            raise ValueError(f"station table lacks column {col!r}; found {list(stations.columns)}")
    row, colidx = grid.rowcol(stations["lon"].to_numpy(), stations["lat"].to_numpy(), check=False)
    out = stations.copy()
    out["station"] = out["station"].astype(str)
    out["row"], out["col"] = row, colidx
    outside = row < 0
    if outside.any():
        logger.warning(
            "%d of %d stations lie outside the grid %s: %s",
            int(outside.sum()),
            len(out),
            grid.bounds,
            ", ".join(out.loc[outside, "station"].head(10)),
        )
        if drop_outside:
            out = out.loc[~outside]
    return out.reset_index(drop=True)


def _spatial_values(field) -> np.ndarray:
    if isinstance(field, xr.DataArray):
        lat, lon = spatial_dims(field)
        return field.transpose(..., lat, lon).values
    return np.asarray(field)


def values_at_pixels(field, rows, cols) -> np.ndarray:
    """Values of a ``(..., lat, lon)`` field at cells ``(rows[k], cols[k])``: ``(..., n)``."""
    values = _spatial_values(field)
    rows, cols = np.asarray(rows, dtype="i8"), np.asarray(cols, dtype="i8")
    _check_cells(rows, cols, values.shape[-2:])
    return values[..., rows, cols]


def _check_cells(rows, cols, shape) -> None:
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError(f"rows and cols must be 1-D of equal length: {rows.shape}, {cols.shape}")
    if rows.size and (
        rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]
    ):
        raise ValueError(
            f"cells outside the field of shape {tuple(shape)}: rows {rows.min()}..{rows.max()}, "
            f"cols {cols.min()}..{cols.max()}"
        )


def patch_indices(rows, cols, size: int, shape: tuple[int, int]):
    """Row/column indices of ``size`` x ``size`` windows centred on cells.

    Returns ``ri (n, size)``, ``ci (n, size)`` clipped into the grid, and ``valid``
    ``(n, size, size)``: False where the window leaves the grid.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"patch size must be a positive odd number, got {size}")
    rows, cols = np.asarray(rows, dtype="i8"), np.asarray(cols, dtype="i8")
    _check_cells(rows, cols, shape)
    off = np.arange(size) - size // 2
    ri, ci = rows[:, None] + off, cols[:, None] + off
    vr = (ri >= 0) & (ri < shape[0])
    vc = (ci >= 0) & (ci < shape[1])
    ri, ci = np.clip(ri, 0, shape[0] - 1), np.clip(ci, 0, shape[1] - 1)
    return ri, ci, vr[:, :, None] & vc[:, None, :]


def extract_patches(field, rows, cols, size: int) -> np.ndarray:
    """``size`` x ``size`` windows of a ``(..., lat, lon)`` field: ``(..., n, size, size)``.

    Cells outside the grid are NaN (float32 result).
    """
    values = _spatial_values(field)
    ri, ci, valid = patch_indices(rows, cols, size, values.shape[-2:])
    out = values[..., ri[:, :, None], ci[:, None, :]].astype("f4", copy=False)
    if not valid.all():
        out = np.where(valid, out, np.float32(np.nan))
    return out


def neighbourhood_means(field, rows, cols, k: int) -> np.ndarray:
    """Mean over the ``k`` x ``k`` cells centred on each cell: ``(..., n)``.

    NaN cells and cells outside the grid are left out of the mean (so windows at the grid
    edge are smaller); NaN where no cell of the window is valid.  ``k = 1`` gives
    :func:`values_at_pixels`.
    """
    p = extract_patches(field, rows, cols, k).astype("f8")
    ok = np.isfinite(p)
    total = np.where(ok, p, 0.0).sum(axis=(-2, -1))
    count = ok.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# --------------------------------------------------------------------------- windows
def window_index(time_idx, window: int, n_time: int):
    """Day indices of ``window``-day windows centred on ``time_idx``.

    Returns ``idx (..., window)`` clipped into ``[0, n_time)`` and ``valid (..., window)``,
    False for days before the first or after the last day of the axis.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of days, got {window}")
    t = np.asarray(time_idx, dtype="i8")
    idx = t[..., None] + (np.arange(window) - window // 2)
    valid = (idx >= 0) & (idx < n_time)
    return np.clip(idx, 0, n_time - 1), valid


def window_span(time_idx, window: int, n_time: int) -> slice:
    """The shortest slice of a time axis of ``n_time`` days that holds the ``window``-day
    windows of the days ``time_idx``: from ``window // 2`` days before the first to
    ``window // 2`` days after the last, clipped to the axis.

    Cut to this slice, the axis gives every one of these days the same cube as the whole
    axis does (days beyond the slice's ends are days beyond the axis's, NaN in both), so a
    job that predicts these days reads only the slice.  Days between the first and the last
    that are not in ``time_idx`` are in the slice too.
    """
    window_index(0, window, 1)  # validates window
    t = np.asarray(time_idx, dtype="i8")
    if t.size == 0:
        raise ValueError("no days to span")
    if t.min() < 0 or t.max() >= n_time:
        raise ValueError(f"days {t.min()}..{t.max()} outside a time axis of {n_time} days")
    h = window // 2
    return slice(max(0, int(t.min()) - h), min(n_time, int(t.max()) + h + 1))


def patch_times(path: str | os.PathLike) -> pd.DatetimeIndex:
    """The product days of ``patches.nc`` (its time axis; the patches are not read)."""
    with read_netcdf(path) as ds:
        return pd.DatetimeIndex(ds["time"].values)


class PatchSampler:
    """Window cubes ``(window, py, px, channel)`` of station-days from ``patches.nc``.

    Parameters
    ----------
    x : ndarray ``(station, time, py, px, channel)``
    y : ndarray ``(station, time)``
    window : int
        Days per cube (odd), centred on the target day.
    stations, times, channels, roles : optional labels (from the file with :meth:`open`).
    lat, lon, rows, cols : optional station coordinates and grid cells (from the file).

    Examples
    --------
    >>> ps = PatchSampler.open("results/demo_precip/samples/patches.nc", window=7)
    >>> s, t = ps.indices(roles=["train"])            # every station-day with a target
    >>> xb, yb = ps.batch(s[:256], t[:256])            # (256, 7, 15, 15, C), (256,)
    """

    def __init__(
        self,
        x,
        y,
        window: int = 7,
        *,
        stations=None,
        times=None,
        channels=None,
        roles=None,
        lat=None,
        lon=None,
        rows=None,
        cols=None,
    ):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim != 5 or y.shape != x.shape[:2]:
            raise ValueError(
                f"expected x (station, time, py, px, channel) and y (station, time); "
                f"got x {x.shape}, y {y.shape}"
            )
        window_index(0, window, 1)  # validates window
        self.x, self.y, self.window = x, y, int(window)
        n_st = x.shape[0]
        self.stations = np.asarray(stations if stations is not None else np.arange(n_st))
        self.times = pd.DatetimeIndex(times) if times is not None else None
        self.channels = list(channels) if channels is not None else None
        self.roles = np.asarray(roles) if roles is not None else None
        #: the stations' own coordinates (gauge positions), when known
        self.lat = np.asarray(lat, dtype="f8") if lat is not None else None
        self.lon = np.asarray(lon, dtype="f8") if lon is not None else None
        #: the grid cell of each station, when known
        self.rows = np.asarray(rows, dtype=np.int64) if rows is not None else None
        self.cols = np.asarray(cols, dtype=np.int64) if cols is not None else None

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, window: int | None = None) -> PatchSampler:
        """From an opened ``patches.nc`` (loads ``x`` and ``y``)."""
        window = int(window or ds.attrs.get("window_days", 7))
        return cls(
            ds["x"].values,
            ds["y"].values,
            window,
            stations=ds["station"].values.astype(str),
            times=ds["time"].values,
            channels=[str(c) for c in ds["channel"].values],
            roles=ds["role"].values.astype(str) if "role" in ds.coords else None,
            lat=ds["lat"].values if "lat" in ds.variables else None,
            lon=ds["lon"].values if "lon" in ds.variables else None,
            rows=ds["row"].values if "row" in ds.variables else None,
            cols=ds["col"].values if "col" in ds.variables else None,
        )

    @classmethod
    def open(
        cls, path: str | os.PathLike, window: int | None = None, *, time: slice | None = None
    ) -> PatchSampler:
        """Read ``patches.nc``; ``window`` defaults to the file's ``window_days``.

        ``time``: a slice of the file's time axis (e.g. :func:`window_span`); only those
        days are read, and they are the sampler's time axis (index 0 is ``time.start``).
        """
        with read_netcdf(path) as ds:
            if time is not None:
                ds = ds.isel(time=time)
            return cls.from_dataset(ds.load(), window)

    def geo(self) -> dict[str, np.ndarray]:
        """Coordinates for gauge fields: station ``ids``, ``lat``/``lon`` (the gauges'),
        ``cell_lat``/``cell_lon`` ``(station, py, px)`` (patch cell centres, NaN outside the
        grid) and ``centre_lat``/``centre_lon`` (each station's cell centre)."""
        if self.lat is None or self.channels is None or "lat" not in self.channels:
            raise ValueError("gauge fields need station coordinates and lat/lon channels")
        r = self.x.shape[2] // 2
        cl = self.x[:, 0, :, :, self.channels.index("lat")].astype("f8")
        cn = self.x[:, 0, :, :, self.channels.index("lon")].astype("f8")
        return {
            "ids": np.asarray(self.stations).astype(str),
            "lat": self.lat,
            "lon": self.lon,
            "cell_lat": cl,
            "cell_lon": cn,
            "centre_lat": cl[:, r, r],
            "centre_lon": cn[:, r, r],
        }

    def at_cells(self, files, variable: str = "precip") -> np.ndarray:
        """``(station, time)`` values of yearly gridded files at the stations' cells.

        ``files``: NetCDF files on the patches' grid (e.g. ``product/{year}.nc``); days the
        files do not hold stay NaN, days outside the patches' times are left out.
        """
        if self.rows is None or self.cols is None or self.times is None:
            raise ValueError("the stations' grid cells (row, col) and times are not known")
        out = np.full(self.y.shape, np.nan, dtype="f4")
        for f in files:
            # only the storage chunks around the stations (not every variable of the grid)
            times, values = values_at_cells(f, variable, self.rows, self.cols)
            pos = self.times.get_indexer(pd.DatetimeIndex(times))
            have = pos >= 0
            out[:, pos[have]] = values[have].T
        return out

    def source_inputs(self, sources: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """The patch cubes of ``sources`` and the static channels, in that order.

        Returns ``(x, channels)``, ``x`` of shape ``(station, time, py, px, channel)``: the
        inputs of a network trained on that source-availability set.
        """
        channels = list(sources) + [c for c in self.channels if c in STATIC_CHANNELS]
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise ValueError(f"patches have no channel {missing} (have {self.channels})")
        return self.x[..., [self.channels.index(c) for c in channels]], channels

    @property
    def n_time(self) -> int:
        return self.x.shape[1]

    def cube(self, station: int, time: int) -> np.ndarray:
        """The ``(window, py, px, channel)`` cube of one station-day (NaN beyond the axis)."""
        idx, valid = window_index(time, self.window, self.n_time)
        cube = self.x[station, idx]
        if not valid.all():
            cube = np.where(valid[:, None, None, None], cube, np.nan)
        return cube

    def batch(self, stations, times) -> tuple[np.ndarray, np.ndarray]:
        """Cubes ``(n, window, py, px, channel)`` and targets ``(n,)`` of station-days."""
        s = np.asarray(stations, dtype="i8")
        t = np.asarray(times, dtype="i8")
        idx, valid = window_index(t, self.window, self.n_time)
        cubes = self.x[s[:, None], idx]
        if not valid.all():
            cubes = np.where(valid[:, :, None, None, None], cubes, np.nan)
        return cubes, self.y[s, t]

    def indices(
        self,
        roles: Iterable[str] | None = None,
        *,
        require_target: bool = True,
        full_window: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(station_idx, time_idx)`` of the samples: stations of the given roles (all
        when None), days with a finite target (``require_target``), and optionally only
        days whose whole window lies inside the time axis (``full_window``)."""
        keep = np.ones(self.y.shape, dtype=bool)
        if roles is not None:
            if self.roles is None:
                raise ValueError("this sampler has no station roles")
            keep &= np.isin(self.roles, list(roles))[:, None]
        if require_target:
            keep &= np.isfinite(self.y)
        if full_window:
            h = self.window // 2
            t = np.arange(self.n_time)
            keep &= ((t >= h) & (t < self.n_time - h))[None, :]
        return np.nonzero(keep)


# --------------------------------------------------------------------------- targets
def _days(times) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(times)).normalize()


def target_matrix(daily: pd.DataFrame, stations: Sequence[str], times) -> np.ndarray:
    """Gauge values as a float32 ``(station, time)`` matrix (NaN where missing).

    ``daily`` is the ``stations/daily.parquet`` table (``station, date, value``).
    """
    for col in ("station", "date", "value"):
        if col not in daily.columns:
            raise ValueError(
                f"daily station table lacks column {col!r}; found {list(daily.columns)}"
            )
    days = _days(times)
    st = pd.Index(np.asarray(stations, dtype=str))
    d = daily.assign(station=daily["station"].astype(str), date=_days(daily["date"]))
    i = st.get_indexer(d["station"])
    j = days.get_indexer(d["date"])
    ok = (i >= 0) & (j >= 0)
    out = np.full((len(st), len(days)), np.nan, dtype="f4")
    out[i[ok], j[ok]] = d["value"].to_numpy("f4")[ok]
    return out


# --------------------------------------------------------------------------- samples
def _data_var(ds: xr.Dataset, variable: str | None, path) -> xr.DataArray:
    if variable:
        if variable not in ds.data_vars:
            raise ValueError(f"{path}: no variable {variable!r}; found {list(ds.data_vars)}")
        return ds[variable]
    gridded = [v for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims)]
    if len(gridded) != 1:
        raise ValueError(
            f"{path}: expected one (time, lat, lon) variable, found {gridded}; name one"
        )
    return ds[gridded[0]]


def _check_on_grid(da: xr.DataArray, grid: Grid, path) -> None:
    shape = (da.sizes.get("lat"), da.sizes.get("lon"))
    if shape != grid.shape or not np.allclose(da["lat"].values, grid.lat, atol=grid.res / 100):
        raise ValueError(
            f"{path}: {da.name} is on a {shape} lat/lon grid, expected the product grid "
            f"{grid.shape} ({grid.describe()})"
        )


def _open_year(sources, year: int, variable: str | None, grid: Grid) -> dict:
    """Source key -> (dataset, data array, its days) of one year's downscaled files; a
    missing file or an absent source-year is left out (its channel stays NaN)."""
    handles = {}
    for name in sources:
        path = sources[name].get(year) or sources[name].get(str(year))
        if path is None:
            logger.warning("%s %d: no downscaled file; channel left NaN", name, year)
        elif is_absent(path):
            logger.info("%s %d: absent source-year; channel left NaN", name, year)
        else:
            ds = read_netcdf(path)
            da = _data_var(ds, variable, path)
            _check_on_grid(da, grid, path)
            handles[name] = (ds, da, _days(da["time"].values))
    return handles


def _fill_sources(buf, handles, names, days, rows, cols, patch: int) -> None:
    """Write the source channels of ``days`` into ``buf`` (station, time, py, px, channel)."""
    for c, name in enumerate(names):
        if name not in handles:
            continue
        _, da, fdays = handles[name]
        pos = fdays.get_indexer(days)
        have = np.flatnonzero(pos >= 0)
        if have.size == 0:
            continue
        vals = da.isel(time=pos[have]).transpose("time", "lat", "lon").values
        p = extract_patches(vals, rows, cols, patch)  # (T, S, P, P)
        channel = buf[..., c]  # a view (station, time, py, px)
        channel[:, have] = p.transpose(1, 0, 2, 3)


def write_samples(
    patches_path: str | os.PathLike,
    points_path: str | os.PathLike,
    *,
    grid: Grid,
    sources: Mapping[str, Mapping[int, str | os.PathLike]],
    static: xr.Dataset,
    stations: pd.DataFrame,
    daily: pd.DataFrame,
    start,
    end,
    patch: int = 15,
    window_days: int = 7,
    variable: str | None = None,
    time_block: int = 32,
    cfg: Mapping | None = None,
) -> pd.DataFrame:
    """Write ``patches.nc`` and ``points.parquet`` (module docstring) and return the points.

    Parameters
    ----------
    patches_path, points_path : path
        Output files (written atomically).
    grid : Grid
        The product grid (every downscaled file must be on it).
    sources : mapping
        Source key -> {year: path of ``downscaled/<source>/<year>.nc``}; the order of the
        keys is the order of the channels.  Missing years and absent markers give NaN.
    static : Dataset
        ``static.nc`` (needs ``elevation``).
    stations : DataFrame
        ``stations.csv`` (``station, lat, lon, elevation, role``).
    daily : DataFrame
        ``stations/daily.parquet`` (``station, date, value``).
    start, end : date-like
        First and last product day (the time axis covers every day in between).
    patch, window_days : int
        Patch size in cells and cube length in days (odd; the latter is recorded only).
    variable : str, optional
        Variable to read from the downscaled files (default: their single gridded one).
    time_block : int
        Days gathered at a time (bounds memory to ``time_block`` full grids).
    cfg : mapping, optional
        Configuration recorded in the provenance hash.
    """
    import netCDF4

    window_index(0, window_days, 1)
    patch_indices([0], [0], patch, (1, 1))
    if "elevation" not in static:
        raise ValueError(f"static layers lack 'elevation'; found {list(static.data_vars)}")
    _check_on_grid(static["elevation"], grid, "static.nc")
    st = station_cells(grid, stations)
    if st.empty:
        raise ValueError(f"no station lies inside the grid {grid.describe()}")
    if "role" not in st.columns:
        raise ValueError("station table lacks column 'role'")
    times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
    names = list(sources)
    channels = names + list(STATIC_CHANNELS)
    n_st, n_t, n_c, r = len(st), len(times), len(channels), patch // 2
    rows, cols = st["row"].to_numpy(), st["col"].to_numpy()
    lat2d = np.broadcast_to(grid.lat[:, None], grid.shape)
    lon2d = np.broadcast_to(grid.lon[None, :], grid.shape)
    static_patches = np.stack(
        [
            extract_patches(f, rows, cols, patch)
            for f in (static["elevation"].transpose("lat", "lon").values, lat2d, lon2d)
        ],
        axis=-1,
    )  # (S, P, P, 3)
    y = target_matrix(daily, st["station"], times)
    logger.info(
        "samples: %d stations, %d days (%s..%s), channels %s, patch %d",
        n_st,
        n_t,
        times[0].date(),
        times[-1].date(),
        channels,
        patch,
    )

    points = []
    with atomic_path(patches_path, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            xv = _create_patch_file(nc, st, times, channels, patch, window_days, cfg, names)
            nc["y"][:] = y
            for year in sorted(set(times.year)):
                ydays = np.flatnonzero(times.year == year)
                handles = _open_year(sources, year, variable, grid)
                for b0 in range(0, len(ydays), time_block):
                    tix = ydays[b0 : b0 + time_block]
                    buf = np.full((n_st, len(tix), patch, patch, n_c), np.nan, dtype="f4")
                    _fill_sources(buf, handles, names, times[tix], rows, cols, patch)
                    buf[..., len(names) :] = static_patches[:, None]
                    xv[:, tix[0] : tix[-1] + 1] = buf
                    points.append(
                        _points_block(st, times[tix], y[:, tix], buf[:, :, r, r, :], names)
                    )
                for ds, _, _ in handles.values():
                    ds.close()
    table = pd.concat(points, ignore_index=True)
    with atomic_path(points_path, suffix=".parquet") as tmp:
        table.to_parquet(tmp, index=False)
    logger.info(
        "wrote %s (%d x %d x %d x %d x %d) and %s (%d rows, %d with a target)",
        patches_path,
        n_st,
        n_t,
        patch,
        patch,
        n_c,
        points_path,
        len(table),
        int(table["target"].notna().sum()),
    )
    return table


def _create_patch_file(nc, st, times, channels, patch, window_days, cfg, names):
    """Define dimensions, coordinates and variables of ``patches.nc``; returns ``x``."""
    n_st, n_t, n_c = len(st), len(times), len(channels)
    for dim, n in (
        ("station", n_st),
        ("time", n_t),
        ("py", patch),
        ("px", patch),
        ("channel", n_c),
    ):
        nc.createDimension(dim, n)
    v = nc.createVariable("station", str, ("station",))
    v[:] = st["station"].to_numpy(dtype=object)
    v = nc.createVariable("channel", str, ("channel",))
    v[:] = np.asarray(channels, dtype=object)
    v.long_name = "input channel: downscaled sources, then static layers"
    v = nc.createVariable("time", "f8", ("time",))
    v.units, v.calendar, v.standard_name = _TIME_UNITS, "proleptic_gregorian", "time"
    v[:] = (times - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    for dim in ("py", "px"):
        v = nc.createVariable(dim, "i4", (dim,))
        v[:] = np.arange(patch) - patch // 2
        v.long_name = (
            f"cell offset from the station cell ({'south' if dim == 'py' else 'east'}wards)"
        )
    v = nc.createVariable("role", str, ("station",))
    v[:] = st["role"].astype(str).to_numpy(dtype=object)
    for name, dtype, attrs in (
        ("lat", "f8", {"units": "degrees_north", "long_name": "station latitude"}),
        ("lon", "f8", {"units": "degrees_east", "long_name": "station longitude"}),
        ("row", "i4", {"long_name": "grid row of the station cell (0 = north)"}),
        ("col", "i4", {"long_name": "grid column of the station cell (0 = west)"}),
        ("elevation", "f4", {"units": "m", "long_name": "station elevation"}),
    ):
        if name not in st.columns:
            continue
        v = nc.createVariable(name, dtype, ("station",))
        v[:] = st[name].to_numpy(dtype)
        v.setncatts(attrs)
    x = nc.createVariable(
        "x",
        "f4",
        ("station", "time", "py", "px", "channel"),
        zlib=True,
        complevel=1,
        shuffle=True,
        chunksizes=(1, min(n_t, 64), patch, patch, n_c),
        fill_value=np.float32(np.nan),
    )
    x.long_name = "station-centred input patches"
    x.coordinates = " ".join(
        c for c in ("role", "lat", "lon", "row", "col", "elevation") if c in nc.variables
    )
    y = nc.createVariable("y", "f4", ("station", "time"), fill_value=np.float32(np.nan))
    y.long_name = "gauge value of the product day (target)"
    y.coordinates = x.coordinates
    nc.setncatts(provenance(cfg, names, patch=patch, window_days=window_days))
    return x


def _points_block(st, days, y, centre, names) -> pd.DataFrame:
    """Long rows for one block: centre ``(S, T, C)``, y ``(S, T)``."""
    n_st, n_t = y.shape
    frame = {
        "station": np.repeat(st["station"].to_numpy(dtype=str), n_t),
        "date": np.tile(days.to_numpy(), n_st),
        "role": np.repeat(st["role"].astype(str).to_numpy(), n_t),
        "target": y.reshape(-1),
    }
    for c, name in enumerate([*names, *STATIC_CHANNELS]):
        frame[name] = centre[:, :, c].reshape(-1)
    frame["row"] = np.repeat(st["row"].to_numpy("i4"), n_t)
    frame["col"] = np.repeat(st["col"].to_numpy("i4"), n_t)
    return pd.DataFrame(frame)


# --------------------------------------------------------------------------- interpolation
def interpolation_scores(
    sources: Mapping[str, Iterable[str | os.PathLike]],
    stations: pd.DataFrame,
    daily: pd.DataFrame,
    grid: Grid,
    methods: Sequence[str] = METHODS,
    *,
    variable: str | None = None,
) -> pd.DataFrame:
    """Score each regridding method of each source at the stations.

    Each native daily file (``daily/<source>/<year>.nc``) is regridded with every method
    *only at the station cells* (:meth:`gridfuse.regrid.Regridder.at_points`, the same
    values a full regrid gives there) and compared with the gauges over all station-days
    of all years (every station in the grid, whatever its role): RMSE, MAE, CC and RB
    (:mod:`gridfuse.metrics`).  Absent source-years are skipped.

    Returns
    -------
    DataFrame with columns ``source, method, metric, value, n`` (``n`` = station-days
    with both a gauge value and a source value).
    """
    from . import metrics

    st = station_cells(grid, stations)
    rows, cols = st["row"].to_numpy(), st["col"].to_numpy()
    out = []
    for source, paths in sources.items():
        preds: dict[str, list[np.ndarray]] = {m: [] for m in methods}
        obs: list[np.ndarray] = []
        for path in paths:
            if is_absent(path):
                logger.info("%s: %s is an absent marker; skipped", source, path)
                continue
            with read_netcdf(path) as ds:
                da = _data_var(ds, variable, path)
                lat, lon = spatial_dims(da)
                values = da.transpose(..., lat, lon).values
                days = _days(da["time"].values)
                obs.append(target_matrix(daily, st["station"], days).T)  # (T, S)
                for m in methods:
                    rg = Regridder(da[lat].values, da[lon].values, grid, m)
                    preds[m].append(rg.at_points(values, rows, cols))
        o = np.concatenate(obs) if obs else np.empty((0, len(st)))
        for m in methods:
            p = np.concatenate(preds[m]) if preds[m] else np.empty_like(o)
            n = int(metrics.n_valid(o, p))
            for name in ("rmse", "mae", "cc", "rb"):
                value = float(getattr(metrics, name)(o, p)) if n else np.nan
                out.append({"source": source, "method": m, "metric": name, "value": value, "n": n})
            logger.info("%s %s: n=%d rmse=%.4f", source, m, n, out[-4]["value"])
    return pd.DataFrame(out, columns=INTERPOLATION_COLUMNS)


def sources_by_year(
    paths: Iterable[str | os.PathLike], keys: Sequence[str], years: Sequence[int]
) -> dict[str, dict[int, Path]]:
    """Group ``<dir>/<source>/<year>.nc`` paths into ``{source: {year: path}}``."""
    out: dict[str, dict[int, Path]] = {k: {} for k in keys}
    for p in map(Path, paths):
        src, year = p.parent.name, int(p.stem)
        if src in out and year in years:
            out[src][year] = p
    return out
