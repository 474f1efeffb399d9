"""ERA5 single-level NetCDF files from the Copernicus CDS, both flavours.

* **legacy** (old CDS, ``grib_to_netcdf``): dims ``time, latitude, longitude``; ``time`` as
  int32 ``hours since 1900-01-01``; data packed as int16 with ``scale_factor`` /
  ``add_offset`` / ``_FillValue``; longitude 0..360; latitude descending; when ERA5 and
  ERA5T are mixed, an extra ``expver`` dimension (values 1 and 5).
* **new** (CDS 2024+): time axis ``valid_time`` in ``seconds since 1970-01-01``; a scalar
  ``number`` coordinate; ``expver`` a 4-character string coordinate along ``valid_time``;
  NetCDF4 with internal compression.  A request mixing instantaneous and accumulated
  variables arrives as a ZIP of ``data_stream-<stream>_stepType-instant.nc`` and
  ``..._stepType-accum.nc``.

:func:`open_era5` normalizes either flavour to dims ``(time, lat, lon)`` with ``time`` the
validity time, latitude descending and longitude in -180..180 ascending; units stay as in
the file (``tp`` in metres accumulated over the hour *ending* at ``time``).
:func:`write_era5` writes that normalized layout back in the real file layouts.
:func:`read_era5_daily` turns ``tp`` into daily totals (mm/day) for product days.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from ..daily import DayWindow, aggregate_daily
from ..io import atomic_path
from .qc import SourceQC, mask_implausible, units_factor

logger = logging.getLogger(__name__)

__all__ = [
    "open_era5",
    "write_era5",
    "read_era5_daily",
    "find_era5_files",
    "files_for_days",
    "read",
    "ACCUM_VARIABLES",
]

# Variables ERA5 delivers in the accumulated stream (stepType "accum"); the rest are instant.
ACCUM_VARIABLES = frozenset({"tp", "cp", "lsp", "sf", "ssrd", "strd", "ssr", "str", "e", "ro"})

_ATTRS = {
    "tp": ("m", "Total precipitation", "228"),
    "t2m": ("K", "2 metre temperature", "167"),
    "d2m": ("K", "2 metre dewpoint temperature", "168"),
    "u10": ("m s**-1", "10 metre U wind component", "165"),
    "v10": ("m s**-1", "10 metre V wind component", "166"),
    "sp": ("Pa", "Surface pressure", "134"),
    "blh": ("m", "Boundary layer height", "159"),
}


# ----------------------------------------------------------------------------- reading
def _open_member(path: Path, zf: zipfile.ZipFile, member: str) -> xr.Dataset:
    """One ``.nc`` member of a CDS ZIP, loaded (errors name the ZIP and the member)."""
    label = f"{path}!{member}"
    try:
        buf = io.BytesIO(zf.read(member))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise OSError(f"{path}: ZIP member {member} cannot be extracted ({err})") from err
    errors = []
    for engine in ("h5netcdf", "scipy"):
        try:
            buf.seek(0)
            return xr.open_dataset(buf, engine=engine).load()
        except Exception as err:  # noqa: BLE001 - each engine fails in its own way
            errors.append(f"{engine}: {err}")
    raise OSError(f"{label}: ZIP member is not a readable NetCDF ({'; '.join(errors)})")


def _open_one(path: Path) -> list[tuple[str, xr.Dataset]]:
    """Open a NetCDF file, or every ``.nc`` member of a ZIP, as (label, dataset) pairs."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: ERA5 file not found")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if m.endswith(".nc")]
                if not members:
                    raise ValueError(f"{path}: ZIP holds no .nc member ({zf.namelist()})")
                return [(f"{path}!{m}", _open_member(path, zf, m)) for m in members]
        return [(str(path), xr.open_dataset(path, engine="netcdf4", mask_and_scale=True))]
    except (OSError, ValueError, RuntimeError, KeyError, zipfile.BadZipFile) as err:
        if str(err).startswith(str(path)):
            raise
        raise OSError(f"{path}: cannot be read as ERA5 NetCDF/ZIP ({err})") from err


def _normalize(ds: xr.Dataset, label: str) -> xr.Dataset:
    """One file's dataset -> dims (time, lat, lon), lat descending, lon -180..180."""
    ren = {}
    for old, new in (("valid_time", "time"), ("latitude", "lat"), ("longitude", "lon")):
        if old in ds.variables or old in ds.dims:
            ren[old] = new
    ds = ds.rename(ren)
    for need in ("time", "lat", "lon"):
        if need not in ds.dims:
            raise ValueError(
                f"{label}: expected an ERA5 dimension {need!r} (or valid_time/latitude/"
                f"longitude), found dims {dict(ds.sizes)}"
            )
    if "number" in ds.coords or "number" in ds.variables:
        if "number" in ds.dims:
            ds = ds.isel(number=0)
        ds = ds.drop_vars("number")
    if "expver" in ds.dims:
        # legacy ERA5/ERA5T mix: for each time take the first expver with a value
        parts = [ds.isel(expver=i, drop=True) for i in range(ds.sizes["expver"])]
        merged = parts[0]
        for p in parts[1:]:
            merged = merged.combine_first(p)
        ds = merged
    elif "expver" in ds.variables:
        ds = ds.drop_vars("expver")
    drop = [v for v in ds.data_vars if set(ds[v].dims) != {"time", "lat", "lon"}]
    ds = ds.drop_vars(drop)
    lon = ds["lon"].values.astype("f8")
    lon = np.round(((lon + 180.0) % 360.0) - 180.0, 10)
    lat = ds["lat"].values.astype("f8")
    ds = ds.assign_coords(lon=lon, lat=lat).sortby("lon").sortby("lat", ascending=False)
    ds = ds.transpose("time", "lat", "lon")
    times = pd.DatetimeIndex(ds["time"].values)
    ds = ds.assign_coords(time=times)
    for v in ds.data_vars:
        if np.issubdtype(ds[v].dtype, np.floating) and ds[v].dtype != np.float32:
            ds[v] = ds[v].astype("float32")
    return ds


def open_era5(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    variables: Sequence[str] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
) -> xr.Dataset:
    """Open ERA5 hourly files of either CDS flavour as one normalized dataset.

    Parameters
    ----------
    paths : path or iterable of paths
        NetCDF files (legacy or new CDS) and/or ZIPs of new-CDS stream files.  Files may
        hold different variables (they are merged) and overlapping times (the first file
        wins).
    variables : sequence of str, optional
        Variables to keep (e.g. ``["tp"]``); each must be in at least one file.
    bbox : (west, south, east, north), optional
        Keep cells whose centres lie inside (inclusive), longitudes in -180..180.

    Returns
    -------
    xarray.Dataset
        Dims ``(time, lat, lon)``; ``time`` the validity time (datetime64), ``lat``
        descending, ``lon`` ascending in -180..180; float32 data in the file's units.
    """
    return collect_hourly(paths, variables, bbox).ds


@dataclass
class _Hourly:
    """Hourly ERA5 of several files: the merged dataset, and for every variable the file
    (label) each time step came from; ``spans`` = label -> (first, last time, variables)."""

    ds: xr.Dataset
    file_of: dict[str, np.ndarray]
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp, frozenset]]
    times_of: dict[str, pd.DatetimeIndex]  # each variable's own time steps (before merging)

    def labels(self, var: str, times) -> np.ndarray:
        """The file each of ``times`` of ``var`` came from (None where no file holds it)."""
        idx = self.times_of[var].get_indexer(pd.DatetimeIndex(times))
        out = np.full(idx.size, None, dtype=object)
        out[idx >= 0] = self.file_of[var][idx[idx >= 0]]
        return out


def _crop(ds: xr.Dataset, bbox, label: str) -> xr.Dataset:
    w, s, e, n = bbox
    ds = ds.isel(
        lon=(ds["lon"].values >= w - 1e-9) & (ds["lon"].values <= e + 1e-9),
        lat=(ds["lat"].values >= s - 1e-9) & (ds["lat"].values <= n + 1e-9),
    )
    if ds.sizes["lat"] == 0 or ds.sizes["lon"] == 0:
        raise ValueError(f"{label}: no ERA5 cell inside bbox {bbox}")
    return ds


def _canonical(da: xr.DataArray, spec, label: str, qc: SourceQC) -> xr.DataArray:
    """One file's variable in the spec's units (converted in memory only when needed), its
    first step read to surface a corrupt file here, with its name."""
    units = da.attrs.get("units", "")
    scale, offset = units_factor(units, spec, path=label, qc=qc, variable=str(da.name))
    try:
        if (scale, offset) != (1.0, 0.0):
            da = (da.load() * np.float32(scale) + np.float32(offset)).astype("float32")
        else:
            da.isel(time=slice(0, 1)).values  # noqa: B018 - read one step: fail here, named
    except (OSError, RuntimeError, ValueError) as err:
        raise OSError(f"{label}: {da.name} cannot be read ({err})") from err
    da.attrs = {**da.attrs, "units": spec.units}
    return da


def collect_hourly(
    paths, variables=None, bbox=None, specs=None, qc: SourceQC | None = None
) -> _Hourly:
    """Open and merge ERA5 files; with ``specs`` (variable -> Variable) convert each file's
    units to the canonical ones and record the files in ``qc``."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise FileNotFoundError("open_era5: no ERA5 files given")
    per_var: dict[str, list[xr.DataArray]] = {}
    labels: dict[str, list[str]] = {}
    spans: dict[str, tuple] = {}
    for path in paths:
        for label, raw in _open_one(path):
            ds = _normalize(raw, label)
            if bbox is not None:
                ds = _crop(ds, bbox, label)
            if qc is not None:
                qc.file_read()
            t = pd.DatetimeIndex(ds["time"].values)
            spans[label] = (t.min(), t.max(), frozenset(map(str, ds.data_vars)))
            for v in ds.data_vars:
                if variables is None or v in variables:
                    da = ds[v]
                    if specs is not None and v in specs:
                        da = _canonical(da, specs[v], label, qc)
                    per_var.setdefault(str(v), []).append(da)
                    labels.setdefault(str(v), []).append(label)
    missing = [v for v in (variables or []) if v not in per_var]
    if missing and (specs is None or not per_var):
        raise KeyError(
            f"ERA5 variable(s) {missing} not found in {[str(p) for p in paths]}; "
            f"found {sorted(per_var)}"
        )
    out = {}
    file_of = {}
    times_of = {}
    for v, arrays in per_var.items():
        da = xr.concat(arrays, dim="time", join="exact") if len(arrays) > 1 else arrays[0]
        lab = np.concatenate(
            [np.full(a.sizes["time"], i, dtype="i4") for i, a in enumerate(arrays)]
        )
        idx = pd.DatetimeIndex(da["time"].values)
        keep = np.flatnonzero(~idx.duplicated(keep="first"))
        order = np.argsort(idx[keep], kind="stable")
        out[v] = da.isel(time=keep[order])
        file_of[v] = np.asarray(labels[v], dtype=object)[lab[keep[order]]]
        times_of[v] = pd.DatetimeIndex(out[v]["time"].values)
    try:
        ds = xr.Dataset(out)
    except ValueError as err:
        raise ValueError(
            f"ERA5 files {[str(p) for p in paths]} have different grids ({err})"
        ) from err
    return _Hourly(ds.transpose("time", "lat", "lon"), file_of, spans, times_of)


def _runs(times: pd.DatetimeIndex, step: str = "1h") -> list[tuple]:
    """Consecutive runs ``(first, last)`` of sorted hourly times."""
    step = pd.Timedelta(step)
    if times.size == 0:
        return []
    ns = times.values.astype("datetime64[ns]").astype("i8")
    breaks = np.flatnonzero(np.diff(ns) != step.value)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, times.size - 1]
    return [(times[a], times[b]) for a, b in zip(starts, ends)]


def record_gaps(hourly: _Hourly, needed: dict[str, pd.DatetimeIndex], qc: SourceQC) -> None:
    """Record, per variable, the needed hours no file holds (as time ranges) and the files
    that span such hours without the variable."""
    for var, want in needed.items():
        have = hourly.times_of.get(var, pd.DatetimeIndex([]))
        gap = pd.DatetimeIndex(want).difference(have)
        if gap.empty:
            continue
        for a, b in _runs(gap):
            qc.file_missing(f"{var} {a:%Y-%m-%dT%H}..{b:%Y-%m-%dT%H} (no file holds these hours)")
            for label, (t0, t1, names) in hourly.spans.items():
                if var not in names and t0 <= b and t1 >= a:
                    qc.variable_missing(label, var)


def check_block(block: xr.Dataset, hourly: _Hourly, specs, qc: SourceQC, done: set) -> xr.Dataset:
    """Mask and count implausible values of a loaded block, per file it came from.

    ``done`` holds the ``(variable, time)`` pairs already counted (blocks share their edge
    hour), so every value is counted once.
    """
    for var, spec in specs.items():
        if var not in block or block[var].sizes["time"] == 0:
            continue
        times = pd.DatetimeIndex(block[var]["time"].values)
        labels = hourly.labels(var, times)
        vals = np.asarray(block[var].values, dtype="f4")
        stamps = times.values.astype("datetime64[ns]").astype("i8")
        fresh = np.array([(var, t) not in done for t in stamps])
        for label in pd.unique(labels[labels != None]):  # noqa: E711 - object array
            sel = (labels == label) & fresh
            if sel.any():
                vals[sel] = mask_implausible(
                    vals[sel], spec, spec.units, path=label, qc=qc, variable=var
                )
            again = (labels == label) & ~fresh
            if again.any():  # already counted: mask the same way, silently
                lo, hi = qc.limits.range_of(spec)
                with np.errstate(invalid="ignore"):
                    sub = vals[again]
                    if lo is not None:
                        sub[sub < lo] = np.nan
                    if hi is not None:
                        sub[sub > hi] = np.nan
                    if spec.clip_min is not None:
                        np.maximum(sub, np.float32(spec.clip_min), out=sub, where=np.isfinite(sub))
                vals[again] = sub
        done.update((var, t) for t in stamps)
        block[var] = (block[var].dims, vals, {**block[var].attrs})
    return block


def load_block(ds: xr.Dataset, hourly: _Hourly) -> xr.Dataset:
    """``ds.load()``, an error naming the files of the block when one cannot be read."""
    try:
        return ds.load()
    except (OSError, RuntimeError, ValueError) as err:
        files = sorted({str(f) for v in ds.data_vars for f in _labels_of(ds[v], hourly, v)})
        raise OSError(f"ERA5 files {files}: cannot be read ({err})") from err


def _labels_of(da, hourly: _Hourly, var):
    if var not in hourly.file_of or da.sizes.get("time", 0) == 0:
        return []
    labels = hourly.labels(var, da["time"].values)
    return labels[labels != None]  # noqa: E711 - object array


def find_era5_files(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """All ``*.nc`` and ``*.zip`` files under the folders (recursively), sorted."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            found.append(folder)
            continue
        if not folder.is_dir():
            continue
        for root, _, files in os.walk(folder):
            found += [Path(root, f) for f in files if f.endswith((".nc", ".zip"))]
    return sorted(set(found))


def needed_hours(days, window: DayWindow, convention: str) -> pd.DatetimeIndex:
    """Hourly stamps the product ``days`` need: ``end`` (accumulated over the hour ending at
    the stamp) or ``instant``."""
    days = pd.DatetimeIndex(days).normalize()
    if days.empty:
        return pd.DatetimeIndex([])
    start, _ = window.bounds(days)
    first = 1 if convention == "end" else 0
    return pd.DatetimeIndex(
        np.concatenate([(start + pd.Timedelta(hours=h)).values for h in range(first, first + 24)])
    ).sort_values()


def read_era5_daily(
    paths: Iterable[str | os.PathLike],
    days: pd.DatetimeIndex,
    window: DayWindow,
    bbox: tuple[float, float, float, float] | None = None,
    variable: str = "tp",
    *,
    qc: SourceQC | None = None,
    covered=None,
) -> xr.DataArray:
    """Daily precipitation totals (mm/day) of ERA5 hourly ``tp`` for product ``days``.

    ``tp`` (m, accumulated over the hour ending at the stamp; other units converted, see
    :mod:`gridfuse.sources.units`) is checked per file (implausible values masked and
    counted in ``qc``), converted to mm, and the 24 hourly steps ending in each product day
    are summed; a day lacking any step is NaN (counted in ``attrs["days_missing"]``, and its
    missing hours in ``qc`` when the day is ``covered``).
    """
    from . import registry

    qc = qc if qc is not None else SourceQC("era5")
    spec = registry.get_format("era5").variable(variable)
    specs = {variable: spec}
    hourly = collect_hourly(list(paths), [variable], bbox, specs, qc)
    days = pd.DatetimeIndex(days).normalize()
    cov = days if covered is None else days[days.isin(pd.DatetimeIndex(covered).normalize())]
    record_gaps(hourly, {variable: needed_hours(cov, window, "end")}, qc)
    start, end = window.bounds(days)
    sub = hourly.ds[[variable]].sel(time=slice(start[0], end[-1]))
    sub = check_block(load_block(sub, hourly), hourly, specs, qc, set())
    mm = (sub[variable] * np.float32(1000.0)).astype("float32")  # canonical m -> mm
    mm.attrs = {}
    daily = aggregate_daily(
        mm, window, convention="end", step="1h", how="sum", days=days, name="precip"
    )
    daily.attrs["units"] = "mm day-1"
    return daily


# ----------------------------------------------------------------------------- writing
def _pack_int16(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """CDS-style int16 packing: returns (packed, scale_factor, add_offset)."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scale = (hi - lo) / (2**16 - 4) if hi > lo else 1.0  # +-32766: -32767 is the fill
    offset = (hi + lo) / 2.0
    packed = np.round((values - offset) / scale)
    packed = np.where(np.isfinite(values), packed, -32767).astype("i2")
    return packed, scale, offset


def _write_legacy(path: Path, ds: xr.Dataset, expver_from) -> None:
    lon = np.round(ds["lon"].values % 360.0, 10)
    order = np.argsort(lon, kind="stable")
    lon = lon[order]
    times = pd.DatetimeIndex(ds["time"].values)
    hours = ((times - pd.Timestamp("1900-01-01")) / pd.Timedelta("1h")).to_numpy()
    if not np.allclose(hours, np.round(hours)):
        raise ValueError(f"{path}: legacy ERA5 times must be whole hours")
    split = None
    if expver_from is not None:
        split = int(np.searchsorted(times, pd.Timestamp(expver_from)))
    with atomic_path(path, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF3_64BIT_OFFSET") as nc:
            nc.createDimension("longitude", lon.size)
            nc.createDimension("latitude", ds.sizes["lat"])
            if split is not None:
                nc.createDimension("expver", 2)
            nc.createDimension("time", None)
            v = nc.createVariable("longitude", "f4", ("longitude",))
            v.units, v.long_name = "degrees_east", "longitude"
            v[:] = lon
            v = nc.createVariable("latitude", "f4", ("latitude",))
            v.units, v.long_name = "degrees_north", "latitude"
            v[:] = ds["lat"].values
            if split is not None:
                v = nc.createVariable("expver", "i4", ("expver",))
                v.long_name = "expver"
                v[:] = [1, 5]
            v = nc.createVariable("time", "i4", ("time",))
            v.units = "hours since 1900-01-01 00:00:00.0"
            v.long_name, v.calendar = "time", "gregorian"
            v[:] = np.round(hours).astype("i4")
            for name, da in ds.data_vars.items():
                vals = da.transpose("time", "lat", "lon").values.astype("f8")[:, :, order]
                if split is not None:
                    both = np.full((vals.shape[0], 2) + vals.shape[1:], np.nan)
                    both[:split, 0] = vals[:split]
                    both[split:, 1] = vals[split:]
                    vals = both
                packed, scale, offset = _pack_int16(vals)
                dims = (
                    ("time", "expver", "latitude", "longitude")
                    if split is not None
                    else ("time", "latitude", "longitude")
                )
                var = nc.createVariable(name, "i2", dims, fill_value=np.int16(-32767))
                var.set_auto_maskandscale(False)
                var.scale_factor = np.float64(scale)
                var.add_offset = np.float64(offset)
                var.missing_value = np.int16(-32767)
                units, long_name, _ = _ATTRS.get(name, (da.attrs.get("units", "1"), name, ""))
                var.units = da.attrs.get("units", units)
                var.long_name = da.attrs.get("long_name", long_name)
                var[:] = packed
            nc.Conventions = "CF-1.6"
            nc.history = "written by gridfuse.sources.era5.write_era5 (CDS legacy layout)"


def _write_new(path: Path, ds: xr.Dataset) -> None:
    times = pd.DatetimeIndex(ds["time"].values)
    secs = ((times - pd.Timestamp("1970-01-01")) / pd.Timedelta("1s")).to_numpy()
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("valid_time", times.size)
        nc.createDimension("latitude", ds.sizes["lat"])
        nc.createDimension("longitude", ds.sizes["lon"])
        v = nc.createVariable("number", "i8", ())
        v.long_name, v.units, v.standard_name = "ensemble member numerical id", "1", "realization"
        v[...] = 0
        v = nc.createVariable("valid_time", "i8", ("valid_time",))
        v.long_name, v.standard_name = "time", "time"
        v.units, v.calendar = "seconds since 1970-01-01", "proleptic_gregorian"
        v[:] = np.round(secs).astype("i8")
        v = nc.createVariable("latitude", "f8", ("latitude",))
        v.units, v.standard_name, v.long_name = "degrees_north", "latitude", "latitude"
        v.stored_direction = "decreasing"
        v[:] = ds["lat"].values
        v = nc.createVariable("longitude", "f8", ("longitude",))
        v.units, v.standard_name, v.long_name = "degrees_east", "longitude", "longitude"
        v[:] = ds["lon"].values
        v = nc.createVariable("expver", str, ("valid_time",))
        v.long_name = "model experiment version"
        v[:] = np.array(["0001"] * times.size, dtype=object)
        for name, da in ds.data_vars.items():
            var = nc.createVariable(
                name,
                "f4",
                ("valid_time", "latitude", "longitude"),
                zlib=True,
                complevel=1,
                fill_value=np.float32(np.nan),
                chunksizes=(1, ds.sizes["lat"], ds.sizes["lon"]),
            )
            units, long_name, param = _ATTRS.get(name, (da.attrs.get("units", "1"), name, "0"))
            var.GRIB_paramId = np.int64(param or 0)
            var.GRIB_shortName = name
            var.GRIB_stepType = "accum" if name in ACCUM_VARIABLES else "instant"
            var.units = da.attrs.get("units", units)
            var.long_name = da.attrs.get("long_name", long_name)
            var.coordinates = "number valid_time latitude longitude expver"
            var[:] = da.transpose("time", "lat", "lon").values.astype("f4")
        nc.GRIB_centre = "ecmf"
        nc.Conventions = "CF-1.7"
        nc.institution = "European Centre for Medium-Range Weather Forecasts"
        nc.history = "written by gridfuse.sources.era5.write_era5 (new CDS layout)"


def write_era5(
    path: str | os.PathLike,
    ds: xr.Dataset,
    flavour: str = "legacy",
    zip_streams: bool = False,
    *,
    expver_from=None,
) -> Path:
    """Write a normalized ERA5 dataset in a real CDS file layout, atomically.

    Parameters
    ----------
    path : path
        Destination (``.nc``; ``.zip`` with ``zip_streams``).
    ds : xarray.Dataset
        Dims ``(time, lat, lon)`` as returned by :func:`open_era5` (lat descending), in
        ERA5 units (``tp`` in m).
    flavour : {"legacy", "new"}
        Old CDS layout (int16 packed, lon 0..360, ``time`` in hours since 1900) or the
        2024+ layout (``valid_time``, ``number``, string ``expver``, NetCDF4 float32).
    zip_streams : bool
        New flavour only: write a ZIP with ``data_stream-oper_stepType-instant.nc`` and
        ``data_stream-oper_stepType-accum.nc`` (variables split by step type), as the CDS
        does for mixed requests.
    expver_from : datetime-like, optional
        Legacy flavour only: times from this one on are stored under ``expver`` 5 (ERA5T)
        and earlier ones under 1, with the extra ``expver`` dimension of such downloads.
    """
    path = Path(path)
    for need in ("time", "lat", "lon"):
        if need not in ds.dims:
            raise ValueError(f"write_era5 {path}: dataset lacks dim {need!r} ({dict(ds.sizes)})")
    if ds["lat"].values[0] < ds["lat"].values[-1]:
        ds = ds.isel(lat=slice(None, None, -1))
    if flavour == "legacy":
        if zip_streams:
            raise ValueError(f"write_era5 {path}: zip_streams needs flavour='new'")
        _write_legacy(path, ds, expver_from)
    elif flavour == "new":
        if not zip_streams:
            with atomic_path(path, suffix=".nc") as tmp:
                _write_new(tmp, ds)
        else:
            accum = [v for v in ds.data_vars if v in ACCUM_VARIABLES]
            instant = [v for v in ds.data_vars if v not in ACCUM_VARIABLES]
            with atomic_path(path, suffix=".zip") as tmp:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
                    for step, names in (("instant", instant), ("accum", accum)):
                        if not names:
                            continue
                        member = tmp.with_name(tmp.name + f".{step}.nc")
                        try:
                            _write_new(member, ds[names])
                            # a fixed member time: the same data give the same bytes
                            info = zipfile.ZipInfo(
                                f"data_stream-oper_stepType-{step}.nc", (1980, 1, 1, 0, 0, 0)
                            )
                            zf.writestr(info, member.read_bytes())
                        finally:
                            member.unlink(missing_ok=True)
    else:
        raise ValueError(f"write_era5 {path}: flavour must be 'legacy' or 'new', got {flavour!r}")
    logger.debug("wrote ERA5 %s file %s (%s)", flavour, path, list(ds.data_vars))
    return path


_DATE_TOKEN = re.compile(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])?(?:[0-3]\d)?(?!\d)")


def files_for_days(files: Iterable[str | os.PathLike], days) -> list[Path]:
    """The files the product ``days`` may need, judged from dates in their names.

    A name with a date token (``YYYY``, ``YYYYMM`` or ``YYYYMMDD``) is kept when its year
    (or month) lies within one month of the days (day windows reach across month and year
    ends); names without a date token are always kept.
    """
    days = pd.DatetimeIndex(days).normalize()
    lo = (days.min() - pd.DateOffset(months=1)).to_period("M")
    hi = (days.max() + pd.DateOffset(months=1)).to_period("M")
    keep = []
    for f in files:
        m = _DATE_TOKEN.search(Path(f).name)
        if m is None:
            keep.append(Path(f))
            continue
        y = int(m.group(1))
        if m.group(2):
            month = pd.Period(year=y, month=int(m.group(2)), freq="M")
            ok = lo <= month <= hi
        else:
            ok = lo.year <= y <= hi.year
        if ok:
            keep.append(Path(f))
    return keep


def read(req) -> xr.Dataset:
    """Registry reader (``format: era5``): daily ``tp`` totals (``precip``, mm/day).

    Searches ``req.folders`` for ``*.nc``/``*.zip`` files (those whose names date them far
    from the days are skipped); ``req.bbox`` is widened by half an ERA5 cell (0.125 deg)
    so that every 0.25 deg cell overlapping it is kept.
    """
    paths = files_for_days(find_era5_files(req.folders), req.days)
    if not paths:
        raise FileNotFoundError(
            f"era5: no ERA5 .nc/.zip files for {req.days[0]:%Y-%m-%d}..{req.days[-1]:%Y-%m-%d} "
            f"under {[str(f) for f in req.folders]}"
        )
    w, s, e, n = req.bbox
    h = 0.125
    da = read_era5_daily(
        paths,
        req.days,
        req.window,
        (w - h, s - h, e + h, n + h),
        req.variable or "tp",
        qc=req.qc,
        covered=req.covered,
    )
    return da.to_dataset()
