"""The one reader of the file-per-time-step formats (IMERG, GSMaP, GLDAS, CMORPH).

A format is described by a :class:`StepFormat`:

* a file-name **pattern** and ``starts``: for each sub-daily step, its *start* time (the
  beginning of the interval it covers) -> the file holding it, from file names without
  opening them (:func:`scan_files`);
* a **file reader** ``read_file(path, bbox, variable, limits) -> StepData``: the steps of one
  file (start times taken from the file itself), the cropped coordinates, the amounts in mm
  per step, and the file's QC record (units checked, implausible values masked and counted,
  :func:`gridfuse.sources.qc.check_values`).

:func:`read_steps` (the registry reader of every such format) indexes the files and calls
:func:`daily_from_steps`, which reads the files of a block of product days in parallel
worker processes (HDF5 serializes threads, so processes, not threads), checks each file's
own times against its name and its grid against the first file's, sums the steps of each
product day, and records every missing step file of a covered day.  Memory is bounded by one
block of days.
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
from .qc import QCLimits, QualityError, SourceQC

logger = logging.getLogger(__name__)

__all__ = [
    "StepFormat",
    "read_steps",
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
    qc: SourceQC | None = None


@dataclass(frozen=True)
class StepFormat:
    """A file-per-time-step format, read by :func:`read_steps`.

    Attributes
    ----------
    label : str
        Format name (messages).
    pattern : re.Pattern
        File names of the format (matched against the base name).
    starts : callable
        ``starts(match) -> list of Timestamp``: start of each step a file holds, by its name.
    read_file : callable
        ``read_file(path, bbox, variable, limits) -> StepData`` (module level: it runs in
        worker processes).
    step : str
        Step length (``"30min"``, ``"1h"``, ``"3h"``, ``"1D"``).
    name_of : callable, optional
        ``name_of(step start) -> str``: the file expected for a step (named when missing).
    select : callable, optional
        ``select(window) -> re.Pattern``: the pattern for a day window (raises when the
        format cannot make such days, e.g. UTC-day files for a 12 UTC window).
    shift : callable, optional
        ``shift(index) -> Timedelta``: subtracted from the name-derived times (GLDAS names
        stamp the end of the interval; the first file's ``time_bnds`` says so).
    """

    label: str
    pattern: re.Pattern
    starts: Callable[[re.Match], list]
    read_file: Callable
    step: str
    name_of: Callable | None = None
    select: Callable | None = None
    shift: Callable | None = None


def netcdf_times(var, values=None, *, path=None) -> pd.DatetimeIndex:
    """Decode a CF time variable (or ``values`` in its units) to minute-rounded datetimes.

    Units or a calendar that cannot be decoded (cftime) raise a ``ValueError`` naming the
    file and the variable with its ``units`` and ``calendar``.
    """
    import netCDF4

    units = str(getattr(var, "units", "")).strip()
    calendar = getattr(var, "calendar", "standard")
    try:
        vals = netCDF4.num2date(
            var[:] if values is None else values,
            units,
            calendar,
            only_use_cftime_datetimes=False,
        )
        return pd.DatetimeIndex(np.asarray(vals, dtype="datetime64[ns]").ravel()).round("min")
    except (ValueError, TypeError, OverflowError, AttributeError) as err:
        where = f"{path}: " if path is not None else ""
        raise ValueError(
            f"{where}time variable {getattr(var, 'name', '?')!r} cannot be decoded (units "
            f"{units!r}, calendar {calendar!r}; expected CF '<unit> since <date>' on a "
            f"standard calendar): {err}"
        ) from err


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


def _read_batch(read, paths, bbox, variable, limits):
    return [read(p, bbox, variable, limits) for p in paths]


def _read_files(files, read, bbox, variable, limits, pool, threads) -> list[StepData]:
    """The files' StepData, in worker processes when there is a pool."""
    if pool is None or len(files) < 2:
        return [read(p, bbox, variable, limits) for p in files]
    n = max(1, len(files) // (threads * 4))
    batches = [files[i : i + n] for i in range(0, len(files), n)]
    parts = pool.map(_read_batch, *zip(*[(read, b, bbox, variable, limits) for b in batches]))
    return [r for part in parts for r in part]


def _check_file(path, res: StepData, grid: list, named: list) -> None:
    """The file's grid against the first file's (``grid``, set by the first call) and its
    own step times against those its name says."""
    if not grid:
        grid[:] = [res.lat, res.lon]
    lat, lon = grid
    if (
        res.lat.shape != lat.shape
        or res.lon.shape != lon.shape
        or not (np.allclose(res.lat, lat, atol=1e-4) and np.allclose(res.lon, lon, atol=1e-4))
    ):
        raise ValueError(
            f"{path}: grid {res.lat.size}x{res.lon.size} (lat {res.lat[0]}..), "
            f"differs from the first file's {lat.size}x{lon.size} (lat {lat[0]}..)"
        )
    own = sorted(pd.Timestamp(t) for t in res.starts)
    if own != sorted(named):
        raise ValueError(
            f"{path}: holds steps starting {[str(t) for t in own]}, but its name "
            f"says {[str(t) for t in sorted(named)]}"
        )


def read_steps(fmt: StepFormat, req) -> xr.Dataset:
    """Registry reader of a :class:`StepFormat`: daily totals ``precip`` (mm/day).

    ``req`` is a :class:`gridfuse.sources.ingest.ReadRequest`; its ``qc`` receives the
    per-file records and every missing step of a covered day.
    """
    pattern = fmt.select(req.window) if fmt.select is not None else fmt.pattern
    index = scan_files(req.folders, pattern, fmt.starts)
    if fmt.shift is not None and index:
        shift = fmt.shift(index)
        index = {t - shift: v for t, v in index.items()}
    da = daily_from_steps(
        index,
        fmt.read_file,
        req.days,
        req.window,
        fmt.step,
        req.bbox,
        variable=req.variable,
        threads=req.threads,
        label=fmt.label,
        qc=req.qc,
        covered=req.covered,
        name_of=fmt.name_of,
        folders=req.folders,
    )
    return da.to_dataset()


def daily_from_steps(
    index: dict[pd.Timestamp, tuple[Path, int]],
    read: Callable,
    days,
    window: DayWindow,
    step,
    bbox: tuple[float, float, float, float],
    *,
    variable: str = "",
    threads: int = 1,
    label: str = "source",
    block_days: int = 8,
    qc: SourceQC | None = None,
    covered=None,
    name_of: Callable | None = None,
    folders=(),
) -> xr.DataArray:
    """Daily totals (mm/day) of the product ``days`` from per-step files.

    Parameters
    ----------
    index : dict
        Step start -> (file, position), from :func:`scan_files`.
    read : callable
        ``read(path, bbox, variable, limits) -> StepData`` (a module-level function: it
        runs in worker processes).
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
    qc : SourceQC, optional
        Receives the files' QC records and the missing steps of covered days.
    covered : dates, optional
        Days the source covers (default: all); a missing step of another day is expected.
    name_of : callable, optional
        File name of a step start (named in the QC record of a missing step).
    folders : paths
        Folders searched (named when no file is found).

    Returns
    -------
    xarray.DataArray
        ``precip`` (time, lat, lon), float32 mm/day, ``attrs["days_missing"]``.
    """
    qc = qc if qc is not None else SourceQC(label)
    limits: QCLimits = qc.limits
    days = pd.DatetimeIndex(days).normalize()
    covered = days if covered is None else pd.DatetimeIndex(covered).normalize()
    step = pd.Timedelta(step)
    wanted = expected_stamps(days, window, "start", step)
    nd, ns = wanted.shape
    if not index:
        where = [str(f) for f in folders] or ["(no folder)"]
        example = f" (e.g. {name_of(pd.Timestamp(wanted[0, 0]))})" if name_of else ""
        raise FileNotFoundError(
            f"{label}: no {label} files found under {where} for "
            f"{days[0].date()}..{days[-1].date()}{example}"
        )
    by_path: dict[Path, list[pd.Timestamp]] = {}
    for t, (p, _) in index.items():
        by_path.setdefault(p, []).append(t)
    out = None
    grid: list = []  # the first file's (lat, lon)
    missing_days = 0
    n_files = 0
    pool = ProcessPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        for b0 in range(0, nd, block_days):
            block = wanted[b0 : b0 + block_days]
            files = sorted({index[t][0] for t in map(pd.Timestamp, block.ravel()) if t in index})
            n_files += len(files)
            results = _read_files(files, read, bbox, variable, limits, pool, threads)
            by_start: dict[pd.Timestamp, np.ndarray] = {}
            for path, res in zip(files, results):
                qc.file_read()
                if res.qc is not None:
                    qc.merge(res.qc)
                _check_file(path, res, grid, by_path[path])
                by_start.update(zip(map(pd.Timestamp, res.starts), res.data))
            if out is None and grid:
                out = np.full((nd, grid[0].size, grid[1].size), np.nan, dtype="f4")
            for i in range(block.shape[0]):
                day_steps = [by_start.get(pd.Timestamp(t)) for t in block[i]]
                if any(a is None for a in day_steps):
                    missing_days += 1
                    if days[b0 + i] in covered:
                        for t, a in zip(block[i], day_steps):
                            if a is None:
                                qc.file_missing(
                                    name_of(pd.Timestamp(t)) if name_of else f"step {t}"
                                )
                elif out is not None:
                    out[b0 + i] = np.sum(np.stack(day_steps), axis=0, dtype="f4")
    finally:
        if pool is not None:
            pool.shutdown()
    if out is None:
        raise QualityError(
            f"{label}: none of the {nd * ns} steps of {days[0].date()}..{days[-1].date()} "
            f"has a file under {[str(f) for f in folders]}"
        )
    if missing_days:
        logger.warning("%s: %d of %d product days lack steps (set to NaN)", label, missing_days, nd)
    nan_frac = float(np.isnan(out).mean())
    lat, lon = grid
    logger.info(
        "%s: %d files -> %d days on %dx%d cells, NaN fraction %.3f",
        label,
        n_files,
        nd,
        lat.size,
        lon.size,
        nan_frac,
    )
    return xr.DataArray(
        out,
        dims=("time", "lat", "lon"),
        coords={"time": days, "lat": lat.astype("f8"), "lon": lon.astype("f8")},
        name="precip",
        attrs={"units": "mm day-1", "days_missing": missing_days, "steps_per_day": ns},
    )
