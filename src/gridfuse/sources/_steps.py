"""Shared machinery of the file-per-time-step readers (IMERG, GSMaP, GLDAS, CMORPH).

A reader supplies two things:

* an **index**: for each sub-daily step, its *start* time (the beginning of the interval it
  covers) -> the file holding it, derived from file names without opening them;
* a **file reader** ``read(path, bbox, variable) -> StepData``: the steps of one file (start
  times taken from the file itself), the cropped coordinates and the amounts in mm per step.

:func:`daily_from_steps` then reads the files of a block of product days in parallel worker
processes (HDF5 serializes threads, so processes, not threads), checks each file's own
times against its name and its grid against the first file's, and sums the steps of each
product day.  Memory is bounded by one block of days.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..daily import DayWindow, expected_stamps

logger = logging.getLogger(__name__)

__all__ = [
    "StepData",
    "scan_files",
    "crop_slice",
    "daily_from_steps",
    "to_pm180",
]


@dataclass
class StepData:
    """Steps of one file: ``starts`` (interval starts), ``lat`` descending, ``lon``
    ascending (-180..180), ``data`` ``(n_steps, n_lat, n_lon)`` float32 mm per step."""

    starts: pd.DatetimeIndex
    lat: np.ndarray
    lon: np.ndarray
    data: np.ndarray


def netcdf_times(var, values=None) -> pd.DatetimeIndex:
    """Decode a CF time variable (or ``values`` in its units) to minute-rounded datetimes."""
    import netCDF4

    vals = netCDF4.num2date(
        var[:] if values is None else values,
        var.units,
        getattr(var, "calendar", "standard"),
        only_use_cftime_datetimes=False,
    )
    return pd.DatetimeIndex(np.asarray(vals, dtype="datetime64[ns]").ravel()).round("min")


def netcdf_grid_variable(nc, path, name: str, lat_name: str = "lat", lon_name: str = "lon"):
    """The ``(time, lat, lon)`` variable ``name`` of an open netCDF file, unscaled.

    Returns ``(var, lat, lon)`` with 1-D float64 coordinates (2-D coordinate arrays are
    reduced to their axes); a missing variable or a shape that does not match the
    coordinates raises an error naming the file.
    """
    if name not in nc.variables:
        raise KeyError(f"{path}: no variable {name!r} ({sorted(nc.variables)})")
    var = nc.variables[name]
    var.set_auto_maskandscale(False)
    lat = np.asarray(nc.variables[lat_name][:], dtype="f8")
    lon = np.asarray(nc.variables[lon_name][:], dtype="f8")
    if lat.ndim == 2:
        lat, lon = lat[:, 0], lon[0, :]
    if var.ndim != 3 or var.shape[1:] != (lat.size, lon.size):
        raise ValueError(
            f"{path}: {name} shape {var.shape} dims {var.dimensions}, expected (time, "
            f"lat={lat.size}, lon={lon.size})"
        )
    return var, lat, lon


def write_grid_variable(nc, name, lat, lon, values, *, compress, fill, attrs):
    """Create ``lat``/``lon`` coordinates and a float32 ``(time, lat, lon)`` variable in an
    open netCDF file (the layout the CMORPH and GLDAS writers share); NaN becomes ``fill``."""
    for cname, vals, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
        c = nc.createVariable(cname, "f4", (cname,))
        c.units = units
        c[:] = vals
    v = nc.createVariable(
        name,
        "f4",
        ("time", "lat", "lon"),
        zlib=compress,
        complevel=1,
        contiguous=not compress,
        fill_value=fill,
    )
    for k, val in attrs.items():
        setattr(v, k, val)
    v.set_auto_maskandscale(False)
    v[:] = np.where(np.isfinite(values), values, fill)
    return v


def scan_files(
    folders: Iterable[str | os.PathLike],
    pattern: re.Pattern,
    starts_of: Callable[[re.Match], list[pd.Timestamp]],
) -> dict[pd.Timestamp, tuple[Path, int]]:
    """Index files under ``folders`` (recursively) whose name matches ``pattern``.

    Returns ``{step start: (path, position of the step in the file)}``.  Two files holding
    the same step (e.g. two product versions) is an error naming both.
    """
    index: dict[pd.Timestamp, tuple[Path, int]] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            walk = [(str(folder.parent), [], [folder.name])]
        elif folder.is_dir():
            walk = os.walk(folder)
        else:
            continue
        for root, _, files in walk:
            for name in files:
                m = pattern.match(name)
                if not m:
                    continue
                path = Path(root, name)
                for k, start in enumerate(starts_of(m)):
                    if start in index and index[start][0] != path:
                        raise ValueError(
                            f"two files hold the step starting {start}: {index[start][0]} and "
                            f"{path}; keep one product version per folder"
                        )
                    index[start] = (path, k)
    return index


def to_pm180(lon: np.ndarray) -> np.ndarray:
    """Longitudes mapped to -180..180."""
    return np.round(((np.asarray(lon, dtype="f8") + 180.0) % 360.0) - 180.0, 10)


def crop_slice(centres: np.ndarray, lo: float, hi: float, what: str, path) -> slice:
    """Index slice of the cells (ascending ``centres``) overlapping ``[lo, hi]``."""
    c = np.asarray(centres, dtype="f8")
    if c.size > 1:
        half = float(np.median(np.diff(c))) / 2
    else:
        half = 0.0
    if half < 0:
        raise ValueError(f"{path}: {what} coordinates are not ascending")
    tol = 1e-3 * half  # float32 coordinates in the files are off by ~1e-5 deg
    keep = np.flatnonzero((c + half > lo + tol) & (c - half < hi - tol))
    if keep.size == 0:
        raise ValueError(
            f"{path}: no {what} cell overlaps {lo}..{hi} (file covers {c.min()}..{c.max()})"
        )
    return slice(int(keep[0]), int(keep[-1]) + 1)


def lon_window(lon: np.ndarray, west: float, east: float, path) -> tuple[slice, np.ndarray]:
    """Slice of an ascending longitude axis (either 0..360 or -180..180) overlapping
    ``west..east`` (given in -180..180), and the selected longitudes in -180..180."""
    lon = np.asarray(lon, dtype="f8")
    w, e = west, east
    if lon.max() > 180.0 and w < 0:
        w, e = w + 360.0, e + 360.0
        if e > 360.0:
            raise ValueError(f"{path}: bbox {west}..{east} crosses the 0/360 seam of the file")
    sl = crop_slice(lon, w, e, "longitude", path)
    return sl, to_pm180(lon[sl])


def _read_batch(read, paths, bbox, variable):
    return [read(p, bbox, variable) for p in paths]


def daily_from_steps(
    index: dict[pd.Timestamp, tuple[Path, int]],
    read: Callable[[Path, tuple, str], StepData],
    days,
    window: DayWindow,
    step,
    bbox: tuple[float, float, float, float],
    *,
    variable: str = "",
    threads: int = 1,
    label: str = "source",
    block_days: int = 8,
) -> xr.DataArray:
    """Daily totals (mm/day) of the product ``days`` from per-step files.

    Parameters
    ----------
    index : dict
        Step start -> (file, position), from :func:`scan_files`.
    read : callable
        ``read(path, bbox, variable) -> StepData`` (a module-level function: it runs in
        worker processes).
    days : array-like of dates
        Product days.
    window : DayWindow
        Product day window.
    step : timedelta-like
        Step length of the source.
    bbox : (west, south, east, north)
        Region to keep.
    threads : int
        Worker processes (1 = read in this process).
    label : str
        Name used in log messages.

    Returns
    -------
    xarray.DataArray
        ``precip`` (time, lat, lon), float32 mm/day, ``attrs["days_missing"]``.
    """
    days = pd.DatetimeIndex(days).normalize()
    step = pd.Timedelta(step)
    wanted = expected_stamps(days, window, "start", step)
    nd, ns = wanted.shape
    if not index:
        raise FileNotFoundError(f"{label}: no files found for {days[0].date()}..{days[-1].date()}")
    by_path: dict[Path, list[pd.Timestamp]] = {}
    for t, (p, _) in index.items():
        by_path.setdefault(p, []).append(t)
    out = None
    lat = lon = None
    missing_days = 0
    n_files = 0
    pool = ProcessPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        blocks = range(0, nd, block_days)
        for b0 in blocks:
            block = wanted[b0 : b0 + block_days]
            stamps = [pd.Timestamp(t) for t in block.ravel()]
            files = sorted({index[t][0] for t in stamps if t in index})
            n_files += len(files)
            if pool is not None and len(files) > 1:
                n = max(1, len(files) // (threads * 4))
                batches = [files[i : i + n] for i in range(0, len(files), n)]
                parts = pool.map(_read_batch, *zip(*[(read, b, bbox, variable) for b in batches]))
                results = [r for part in parts for r in part]
            else:
                results = [read(p, bbox, variable) for p in files]
            by_start: dict[pd.Timestamp, np.ndarray] = {}
            for path, res in zip(files, results):
                if lat is None:
                    lat, lon = res.lat, res.lon
                    out = np.full((nd, lat.size, lon.size), np.nan, dtype="f4")
                elif (
                    res.lat.shape != lat.shape
                    or res.lon.shape != lon.shape
                    or not (
                        np.allclose(res.lat, lat, atol=1e-4)
                        and np.allclose(res.lon, lon, atol=1e-4)
                    )
                ):
                    raise ValueError(
                        f"{path}: grid {res.lat.size}x{res.lon.size} (lat {res.lat[0]}..), "
                        f"differs from the first file's {lat.size}x{lon.size} (lat {lat[0]}..)"
                    )
                own = [pd.Timestamp(t) for t in res.starts]
                if sorted(own) != sorted(by_path[path]):
                    raise ValueError(
                        f"{path}: holds steps starting {[str(t) for t in own]}, but its name "
                        f"says {[str(t) for t in sorted(by_path[path])]}"
                    )
                for t, arr in zip(own, res.data):
                    by_start[t] = arr
            for i in range(block.shape[0]):
                day_steps = [by_start.get(pd.Timestamp(t)) for t in block[i]]
                if any(a is None for a in day_steps):
                    missing_days += 1
                    continue
                if out is not None:
                    out[b0 + i] = np.sum(np.stack(day_steps), axis=0, dtype="f4")
    finally:
        if pool is not None:
            pool.shutdown()
    if out is None:
        raise FileNotFoundError(
            f"{label}: none of the {nd * ns} steps of {days[0].date()}..{days[-1].date()} "
            f"has a file"
        )
    if missing_days:
        logger.warning("%s: %d of %d product days lack steps (set to NaN)", label, missing_days, nd)
    nan_frac = float(np.isnan(out).mean())
    logger.info(
        "%s: %d files -> %d days on %dx%d cells, NaN fraction %.3f",
        label,
        n_files,
        nd,
        lat.size,
        lon.size,
        nan_frac,
    )
    da = xr.DataArray(
        out,
        dims=("time", "lat", "lon"),
        coords={"time": days, "lat": lat.astype("f8"), "lon": lon.astype("f8")},
        name="precip",
        attrs={"units": "mm day-1", "days_missing": missing_days, "steps_per_day": ns},
    )
    return da
