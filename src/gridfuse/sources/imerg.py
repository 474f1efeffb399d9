"""GPM IMERG Final Run: half-hourly HDF5 (V06, V07) and daily NetCDF4.

Half-hourly granules ``3B-HHR.MS.MRG.3IMERG.YYYYMMDD-SHHMMSS-EHHMMSS.MMMM.V07B.HDF5`` hold
group ``/Grid`` with ``precipitation`` (V07) or ``precipitationCal`` (V06), float32 mm/hr,
``_FillValue`` -9999.9, arrays ordered ``(time, lon, lat)`` with latitude ascending
(origin south-west), and ``/Grid/time`` in seconds since an epoch that differs by version
(1970-01-01 for V06, 1980-01-06 for V07): decoded per file from its ``units``.  A granule
covers the half hour starting at its ``S`` time (``"start"`` convention).

Daily files ``3B-DAY.MS.MRG.3IMERG.YYYYMMDD-S000000-E235959.V07B.nc4`` hold the UTC-day
total (mm) in ``precipitation`` / ``precipitationCal`` ``(time, lon, lat)``; they are usable
only for UTC-day products (``utc_start_hour`` 0).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd

from ..daily import DayWindow
from ..io import atomic_path
from . import registry
from ._steps import StepData, StepFormat, crop_slice, lon_window, netcdf_times
from .qc import QCLimits, SourceQC, check_values

logger = logging.getLogger(__name__)

__all__ = [
    "HHR",
    "DAILY",
    "read_imerg_hhr_file",
    "write_imerg_hhr",
    "write_imerg_daily",
    "HHR_PATTERN",
    "hhr_name",
    "imerg_daily_name",
    "read_imerg_daily_file",
    "DAY_PATTERN",
]

HHR_PATTERN = re.compile(
    r"3B-HHR\.MS\.MRG\.3IMERG\.(\d{8})-S(\d{6})-E(\d{6})\.(\d{4})\.(V\w+)\.(HDF5|h5|hdf5)$"
)
DAY_PATTERN = re.compile(r"3B-DAY\.MS\.MRG\.3IMERG\.(\d{8})-S000000-E235959\.(V\w+)\.nc4$")
_FILL = np.float32(-9999.9)
_EPOCH = {"V06": "1970-01-01 00:00:00 UTC", "V07": "1980-01-06 00:00:00 UTC"}


def hhr_name(start: pd.Timestamp, version: str = "V07B") -> str:
    """File name of the half-hourly granule starting at ``start``."""
    start = pd.Timestamp(start)
    end = start + pd.Timedelta(minutes=29, seconds=59)
    minutes = start.hour * 60 + start.minute
    return (
        f"3B-HHR.MS.MRG.3IMERG.{start:%Y%m%d}-S{start:%H%M%S}-E{end:%H%M%S}."
        f"{minutes:04d}.{version}.HDF5"
    )


def _attr(obj, name, default=""):
    v = obj.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else str(v) if not isinstance(v, str) else v


def _decode_time(values: np.ndarray, units: str, path) -> pd.DatetimeIndex:
    m = re.match(r"\s*seconds since\s+(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})", units)
    if not m:
        raise ValueError(f"{path}: Grid/time units {units!r}, expected 'seconds since <date>'")
    epoch = pd.Timestamp(m.group(1))
    return epoch + pd.to_timedelta(np.asarray(values, dtype="i8"), unit="s")


def _pick_var(grid, variable: str, path) -> str:
    names = [variable] if variable else ["precipitation", "precipitationCal"]
    for n in names:
        if n in grid:
            return n
    raise KeyError(f"{path}: no IMERG variable {names} in /Grid (found {sorted(grid)})")


def read_imerg_hhr_file(path, bbox, variable: str = "", limits: QCLimits | None = None) -> StepData:
    """One half-hourly granule -> mm per half hour on the cells overlapping ``bbox``.

    The variable's units are checked and its implausible values masked and counted in the
    returned ``StepData.qc`` (:func:`gridfuse.sources.qc.check_values`).
    """
    path = Path(path)
    qc = SourceQC(limits=limits)
    try:
        with h5py.File(path, "r") as h:
            if "Grid" not in h:
                raise KeyError(f"{path}: no group /Grid (found {sorted(h)}); not an IMERG granule")
            grid = h["Grid"]
            name = _pick_var(grid, variable, path)
            var = grid[name]
            lat = grid["lat"][:].astype("f8")
            lon = grid["lon"][:].astype("f8")
            if var.ndim != 3 or var.shape[1:] != (lon.size, lat.size):
                raise ValueError(
                    f"{path}: Grid/{name} has shape {var.shape}, expected (time, lon={lon.size}, "
                    f"lat={lat.size})"
                )
            units = _attr(var, "units") or _attr(var, "Units")
            w, s, e, n = bbox
            lon_sl, lon_out = lon_window(lon, w, e, path)
            lat_sl = crop_slice(lat, s, n, "latitude", path)
            raw = var[:, lon_sl, lat_sl]
            fill = var.attrs.get("_FillValue", _FILL)
            tvar = grid["time"]
            starts = _decode_time(tvar[:], _attr(tvar, "units") or _attr(tvar, "Units"), path)
    except (OSError, KeyError, RuntimeError) as err:
        if str(path) in str(err):
            raise
        raise OSError(f"{path}: cannot be read as an IMERG HDF5 granule ({err})") from err
    data = np.asarray(raw, dtype="f4")
    data = np.where(data == np.float32(np.asarray(fill).ravel()[0]), np.nan, data)
    data = check_values(
        data,
        registry.get_format("imerg_hhr").variable(name),
        units,
        path=path,
        qc=qc,
        variable=name,
    )
    # (time, lon, lat ascending) -> (time, lat descending, lon); mm/hr * 0.5 h
    data = np.ascontiguousarray(data.transpose(0, 2, 1)[:, ::-1, :]) * np.float32(0.5)
    starts = starts.floor("min")
    return StepData(starts, np.round(lat[lat_sl][::-1], 4), np.round(lon_out, 4), data, qc)


def _hhr_starts(m: re.Match) -> list[pd.Timestamp]:
    return [pd.Timestamp(f"{m.group(1)} {m.group(2)}")]


def read_imerg_daily_file(
    path, bbox, variable: str = "", limits: QCLimits | None = None
) -> StepData:
    """One daily IMERG NetCDF4 file -> mm/day for its UTC day."""
    path = Path(path)
    qc = SourceQC(limits=limits)
    try:
        with netCDF4.Dataset(path) as nc:
            names = [variable] if variable else ["precipitation", "precipitationCal"]
            name = next((n for n in names if n in nc.variables), None)
            if name is None:
                raise KeyError(f"{path}: no IMERG daily variable {names} ({sorted(nc.variables)})")
            var = nc.variables[name]
            var.set_auto_maskandscale(False)
            if tuple(var.dimensions) != ("time", "lon", "lat"):
                raise ValueError(f"{path}: {name} dims {var.dimensions}, expected (time, lon, lat)")
            lat = nc.variables["lat"][:].astype("f8")
            lon = nc.variables["lon"][:].astype("f8")
            w, s, e, n = bbox
            lon_sl, lon_out = lon_window(lon, w, e, path)
            lat_sl = crop_slice(lat, s, n, "latitude", path)
            raw = np.asarray(var[:, lon_sl, lat_sl], dtype="f4")
            fill = getattr(var, "_FillValue", _FILL)
            units = getattr(var, "units", "")
            times = netcdf_times(nc.variables["time"], path=path)
    except (OSError, RuntimeError, KeyError) as err:
        if str(path) in str(err):
            raise
        raise OSError(f"{path}: cannot be read as an IMERG daily file ({err})") from err
    data = np.where(raw == np.float32(fill), np.nan, raw)
    data = check_values(
        data,
        registry.get_format("imerg_daily").variable(name),
        units,
        path=path,
        qc=qc,
        variable=name,
    )
    data = np.ascontiguousarray(data.transpose(0, 2, 1)[:, ::-1, :])
    return StepData(
        times.normalize(), np.round(lat[lat_sl][::-1], 4), np.round(lon_out, 4), data, qc
    )


def _day_starts(m: re.Match) -> list[pd.Timestamp]:
    return [pd.Timestamp(m.group(1))]


def _utc_days_only(window: DayWindow) -> re.Pattern:
    if window.utc_start_hour != 0:
        raise ValueError(
            "imerg_daily files hold UTC-day totals; they cannot make product days starting at "
            f"{window.utc_start_hour} UTC (use format imerg_hhr, or utc_start_hour 0)"
        )
    return DAY_PATTERN


HHR = StepFormat(
    "imerg_hhr",
    HHR_PATTERN,
    _hhr_starts,
    read_imerg_hhr_file,
    "30min",
    name_of=hhr_name,
)
DAILY = StepFormat(
    "imerg_daily",
    DAY_PATTERN,
    _day_starts,
    read_imerg_daily_file,
    "1D",
    name_of=lambda t: imerg_daily_name(t),
    select=_utc_days_only,
)


# ----------------------------------------------------------------------------- writing
def write_imerg_hhr(
    path: str | os.PathLike,
    start,
    lat: np.ndarray,
    lon: np.ndarray,
    rate: np.ndarray,
    version: str = "V07B",
    compress: bool = True,
) -> Path:
    """Write one half-hourly granule in the real HDF5 layout (possibly a spatial subset).

    ``rate`` is ``(lat, lon)`` in mm/hr with latitude **descending** (as gridfuse arrays);
    it is stored ``(1, lon, lat)`` with latitude ascending, NaN as -9999.9.  With
    ``compress=False`` the precipitation dataset is stored contiguous and uncompressed.
    """
    path = Path(path)
    lat = np.asarray(lat, dtype="f8")
    lon = np.asarray(lon, dtype="f8")
    rate = np.asarray(rate, dtype="f4")
    if rate.shape != (lat.size, lon.size):
        raise ValueError(f"{path}: rate shape {rate.shape} != (lat {lat.size}, lon {lon.size})")
    if lat[0] > lat[-1]:
        lat, rate = lat[::-1], rate[::-1]
    start = pd.Timestamp(start)
    major = version[:3]
    epoch = _EPOCH.get(major, _EPOCH["V07"])
    secs = int((start - pd.Timestamp(epoch[:19])) / pd.Timedelta("1s"))
    name = "precipitation" if major >= "V07" else "precipitationCal"
    stored = np.where(np.isfinite(rate), rate, _FILL).T[None].astype("f4")
    with atomic_path(path, suffix=".HDF5") as tmp:
        with h5py.File(tmp, "w") as h:
            h.attrs["FileHeader"] = np.bytes_(
                f"DOI=10.5067/GPM/IMERG/3B-HH/{version[1:3]};\nAlgorithmID=3IMERGHH;\n"
                f"AlgorithmVersion={version};\nFileName={path.name};\nGranuleNumber=;\n"
            )
            g = h.create_group("Grid")
            g.attrs["GridHeader"] = np.bytes_(
                "BinMethod=ARITHMETIC_MEAN;\nRegistration=CENTER;\nLatitudeResolution=0.1;\n"
                "LongitudeResolution=0.1;\nNorthBoundingCoordinate=90;\n"
                "SouthBoundingCoordinate=-90;\nEastBoundingCoordinate=180;\n"
                "WestBoundingCoordinate=-180;\nOrigin=SOUTHWEST;\n"
            )
            t = g.create_dataset("time", data=np.array([secs], dtype="i4"))
            t.attrs["units"] = np.bytes_(f"seconds since {epoch}")
            t.attrs["Units"] = np.bytes_(f"seconds since {epoch}")
            t.attrs["calendar"] = np.bytes_("julian")
            t.attrs["standard_name"] = np.bytes_("time")
            for cname, vals, units in (
                ("lat", lat, "degrees_north"),
                ("lon", lon, "degrees_east"),
            ):
                c = g.create_dataset(cname, data=vals.astype("f4"))
                c.attrs["units"] = np.bytes_(units)
                c.attrs["Units"] = np.bytes_(units)
                c.attrs["standard_name"] = np.bytes_("latitude" if cname == "lat" else "longitude")
            if compress:
                v = g.create_dataset(
                    name,
                    data=stored,
                    chunks=(1, lon.size, lat.size),
                    compression="gzip",
                    compression_opts=1,
                )
            else:
                v = g.create_dataset(name, data=stored)
            v.attrs["units"] = np.bytes_("mm/hr")
            v.attrs["Units"] = np.bytes_("mm/hr")
            v.attrs["_FillValue"] = _FILL
            v.attrs["CodeMissingValue"] = np.bytes_("-9999.9")
            v.attrs["DimensionNames"] = np.bytes_("time,lon,lat")
            v.attrs["coordinates"] = np.bytes_("time lon lat")
    return path


def write_imerg_daily(
    path: str | os.PathLike, day, lat, lon, total: np.ndarray, version: str = "V07B"
) -> Path:
    """Write one daily IMERG NetCDF4 file (UTC-day total in mm, ``(time, lon, lat)``)."""
    path = Path(path)
    lat = np.asarray(lat, dtype="f8")
    total = np.asarray(total, dtype="f4")
    if lat[0] > lat[-1]:
        lat, total = lat[::-1], total[::-1]
    name = "precipitation" if version[:3] >= "V07" else "precipitationCal"
    day = pd.Timestamp(day).normalize()
    with atomic_path(path, suffix=".nc4") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("time", 1)
            nc.createDimension("lon", len(lon))
            nc.createDimension("lat", lat.size)
            t = nc.createVariable("time", "i4", ("time",))
            t.units, t.calendar = "days since 1970-01-01 00:00:00Z", "julian"
            t[:] = [(day - pd.Timestamp("1970-01-01")).days]
            for cname, vals, units in (("lon", lon, "degrees_east"), ("lat", lat, "degrees_north")):
                c = nc.createVariable(cname, "f4", (cname,))
                c.units = units
                c[:] = vals
            v = nc.createVariable(
                name, "f4", ("time", "lon", "lat"), zlib=True, complevel=1, fill_value=_FILL
            )
            v.units = "mm"
            v.long_name = "Daily accumulated precipitation (combined microwave-IR) estimate"
            v.set_auto_maskandscale(False)
            v[:] = np.where(np.isfinite(total), total, _FILL).T[None]
    return path


def imerg_daily_name(day, version: str = "V07B") -> str:
    """File name of the daily granule of UTC day ``day``."""
    return f"3B-DAY.MS.MRG.3IMERG.{pd.Timestamp(day):%Y%m%d}-S000000-E235959.{version}.nc4"
