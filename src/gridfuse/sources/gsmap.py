"""GSMaP-Gauge v8 (JAXA): hourly and daily ``.dat.gz`` binaries and the hourly NetCDF.

Binary files are gzip-compressed raw float32 **little-endian** global grids of 1200 rows x
3600 columns, longitude fastest; column ``i`` is centred at ``0.05 + 0.1 i`` E, row ``j`` at
``59.95 - 0.1 j`` N (north row first).  Negative values are missing (-4 sea ice, -8 cold,
-99 / -999.9 no data).  Values are mean rates in mm/hr:

* hourly ``gsmap_gauge.YYYYMMDD.HH00.v8.*.dat.gz``: the hour starting ``HH``:00 UTC;
* daily ``gsmap_gauge.YYYYMMDD.0.1d.daily.00Z-23Z.v8*.dat.gz`` (UTC day) and
  ``...p12Z-11Z...`` (12 UTC of the previous day to 12 UTC: the CMA 20-20 Beijing day);
  the daily mean rate times 24 is the day total.

The NetCDF variant (``hourlyPrecipRateGC``, coordinates ``Latitude``/``Longitude``, time
first) is read with its own coordinates, so spatial subsets work too.  Binary files have no
header, hence always the full global grid; only the rows down to the region's southern edge
are decompressed.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

from ..daily import DayWindow
from ..io import atomic_path
from . import registry
from ._steps import (
    StepData,
    StepFormat,
    crop_slice,
    lon_window,
    netcdf_grid_variable,
    netcdf_times,
)
from .qc import QCLimits, SourceQC, check_values

logger = logging.getLogger(__name__)

__all__ = [
    "NLAT",
    "NLON",
    "LAT",
    "LON",
    "hourly_name",
    "daily_name",
    "netcdf_name",
    "read_gsmap_binary",
    "HOURLY",
    "DAILY",
    "NETCDF",
    "write_gsmap_binary",
    "write_gsmap_netcdf",
]

NLAT, NLON = 1200, 3600
LAT = np.round(59.95 - 0.1 * np.arange(NLAT), 4)  # descending
LON = np.round(0.05 + 0.1 * np.arange(NLON), 4)  # 0..360
_ROW_BYTES = NLON * 4

# the binary family: gsmap_<product>.YYYYMMDD.HH00[.vP.RSKI.J].dat.gz, product gauge, mvk,
# nrt, gauge_nrt, rnl, gauge_rnl, ... (one 3600 x 1200 float32 grid each)
HOURLY_PATTERN = re.compile(
    r"gsmap_(?P<product>[a-z][a-z_]*)\.(\d{8})\.(\d{2})00(?:\.v\d[\w.]*?)?\.dat\.gz$"
)
DAILY_PATTERN = re.compile(
    r"gsmap_(?P<product>[a-z][a-z_]*)\.(\d{8})\.0\.1d\.daily\.(00Z-23Z|p12Z-11Z)"
    r"(?:\.v\d[\w.]*?)?\.dat\.gz$"
)
NETCDF_PATTERN = re.compile(
    r"(?:gsmap_gauge\.(\d{8})\.(\d{2})00\.v8[\w.]*\.nc|GPMMRG_MAP_(\d{10})_H_\w*\.nc)$"
)


def hourly_name(start, version: str = "v8.0000.1") -> str:
    """File name of the hourly binary for the hour starting at ``start``."""
    return f"gsmap_gauge.{pd.Timestamp(start):%Y%m%d.%H}00.{version}.dat.gz"


def daily_name(day, window: str = "p12Z-11Z", version: str = "v8.0000.0") -> str:
    """File name of a daily binary (``window`` ``00Z-23Z`` or ``p12Z-11Z``)."""
    return f"gsmap_gauge.{pd.Timestamp(day):%Y%m%d}.0.1d.daily.{window}.{version}.dat.gz"


def netcdf_name(start) -> str:
    """File name of the hourly NetCDF for the hour starting at ``start``."""
    return f"gsmap_gauge.{pd.Timestamp(start):%Y%m%d.%H}00.v8.nc"


def _rows_cols(bbox, path) -> tuple[slice, slice, np.ndarray]:
    w, s, e, n = bbox
    lon_sl, lon_out = lon_window(LON, w, e, path)
    # rows are north-first: crop on the ascending copy, then map back
    asc = LAT[::-1]
    sl = crop_slice(asc, s, n, "latitude", path)
    rows = slice(NLAT - sl.stop, NLAT - sl.start)
    return rows, lon_sl, lon_out


def read_gsmap_binary(path, bbox, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells of one binary file overlapping ``bbox``: ``(lat desc, lon, values * scale)``.

    Negative values (the format's missing codes -4, -8, -99, -999.9) are NaN.  Only the rows
    down to the southern edge of ``bbox`` are decompressed: a file cut or damaged further
    south is read without error (the values used are intact), one cut within those rows is
    an error naming it.
    """
    path = Path(path)
    rows, cols, lon_out = _rows_cols(bbox, path)
    need = rows.stop * _ROW_BYTES
    try:
        with gzip.open(path, "rb") as f:
            buf = f.read(need)
    except (OSError, EOFError, zlib.error) as err:
        raise OSError(f"{path}: cannot be read as a gzipped GSMaP binary ({err})") from err
    if len(buf) < need:
        raise ValueError(
            f"{path}: truncated GSMaP binary, {len(buf)} bytes where at least {need} of the "
            f"{NLAT}x{NLON} float32 grid were expected"
        )
    grid = np.frombuffer(buf, dtype="<f4").reshape(rows.stop, NLON)
    vals = grid[rows, cols].astype("f4")
    vals = np.where(vals < 0, np.nan, vals) * np.float32(scale)
    return LAT[rows].copy(), lon_out, vals


def _hourly_file(path, bbox, variable="", limits: QCLimits | None = None) -> StepData:
    m = HOURLY_PATTERN.match(Path(path).name)
    qc = SourceQC(limits=limits)
    lat, lon, vals = read_gsmap_binary(path, bbox, 1.0)  # mm/hr over one hour = mm
    spec = registry.get_format("gsmap_hourly").variable()
    vals = check_values(vals, spec, "mm h-1", path=path, qc=qc)  # the format's documented unit
    return StepData(pd.DatetimeIndex([_hour_start(m)]), lat, lon, vals[None], qc)


def _hour_start(m: re.Match) -> pd.Timestamp:
    return pd.Timestamp(f"{m.group(2)} {m.group(3)}:00")


def _daily_start(m: re.Match) -> pd.Timestamp:
    day = pd.Timestamp(m.group(2))
    return day - pd.Timedelta("12h") if m.group(3) == "p12Z-11Z" else day


def _daily_file(path, bbox, variable="", limits: QCLimits | None = None) -> StepData:
    m = DAILY_PATTERN.match(Path(path).name)
    qc = SourceQC(limits=limits)
    lat, lon, vals = read_gsmap_binary(path, bbox, 1.0)
    spec = registry.get_format("gsmap_daily").variable()
    vals = check_values(vals, spec, "mm h-1", path=path, qc=qc)
    # the daily mean rate x 24 h = the day's total
    return StepData(pd.DatetimeIndex([_daily_start(m)]), lat, lon, vals[None] * 24, qc)


def _daily_window(window: DayWindow) -> re.Pattern:
    """``00Z-23Z`` files for UTC-day products, ``p12Z-11Z`` for the CMA day (12 UTC)."""
    want = {0: "00Z-23Z", 12: "p12Z-11Z"}.get(window.utc_start_hour)
    if want is None:
        raise ValueError(
            f"gsmap_daily files exist for UTC days (00Z-23Z) and 12-12 UTC days (p12Z-11Z); "
            f"product days starting at {window.utc_start_hour} UTC need gsmap_hourly"
        )
    return re.compile(DAILY_PATTERN.pattern.replace("(00Z-23Z|p12Z-11Z)", f"({want})"))


def _nc_start(m: re.Match) -> pd.Timestamp:
    if m.group(1):
        return pd.Timestamp(f"{m.group(1)} {m.group(2)}:00")
    return pd.to_datetime(m.group(3), format="%y%m%d%H%M")


def _netcdf_file(path, bbox, variable="", limits: QCLimits | None = None) -> StepData:
    path = Path(path)
    qc = SourceQC(limits=limits)
    name = variable or "hourlyPrecipRateGC"
    try:
        with netCDF4.Dataset(path) as nc:
            var, lat, lon = netcdf_grid_variable(nc, path, name, "Latitude", "Longitude")
            raw = np.asarray(var[:], dtype="f4")
            units = getattr(var, "units", "")
            fill = getattr(var, "_FillValue", None)
            times = None
            for tname in ("Time", "time"):
                if tname in nc.variables:
                    times = netcdf_times(nc.variables[tname], path=path)
    except (OSError, RuntimeError) as err:
        raise OSError(f"{path}: cannot be read as a GSMaP NetCDF ({err})") from err
    if times is None:
        times = pd.DatetimeIndex([_nc_start(NETCDF_PATTERN.match(path.name))])
    if lat[0] > lat[-1]:
        lat, raw = lat[::-1], raw[:, ::-1]
    w, s, e, n = bbox
    lon_sl, lon_out = lon_window(lon, w, e, path)
    lat_sl = crop_slice(lat, s, n, "latitude", path)
    vals = raw[:, lat_sl, lon_sl][:, ::-1]
    missing = vals < 0  # the format's missing codes are negative
    if fill is not None:
        missing |= vals == np.float32(fill)
    vals = np.where(missing, np.nan, vals).astype("f4")
    spec = registry.get_format("gsmap_netcdf").variable(name)
    vals = check_values(vals, spec, units, path=path, qc=qc, variable=name)
    return StepData(times, np.round(lat[lat_sl][::-1], 4), np.round(lon_out, 4), vals, qc)


HOURLY = StepFormat(
    "gsmap_hourly",
    HOURLY_PATTERN,
    lambda m: [_hour_start(m)],
    _hourly_file,
    "1h",
    name_of=lambda t: f"gsmap_*.{pd.Timestamp(t):%Y%m%d.%H}00.*.dat.gz",
)
DAILY = StepFormat(
    "gsmap_daily",
    DAILY_PATTERN,
    lambda m: [_daily_start(m)],
    _daily_file,
    "1D",
    name_of=lambda t: f"gsmap_*.{pd.Timestamp(t) + pd.Timedelta('12h'):%Y%m%d}.0.1d.daily.*.dat.gz",
    select=_daily_window,
)
NETCDF = StepFormat(
    "gsmap_netcdf",
    NETCDF_PATTERN,
    lambda m: [_nc_start(m)],
    _netcdf_file,
    "1h",
    name_of=lambda t: netcdf_name(t),
)


# ----------------------------------------------------------------------------- writing
_ZERO_MEMBERS: dict[tuple[int, int], tuple[bytes, bytes]] = {}


def _gzip_member(data: bytes) -> bytes:
    co = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip container
    return co.compress(data) + co.flush()


def write_gsmap_binary(path: str | os.PathLike, lat, lon, rate: np.ndarray) -> Path:
    """Write a global 1200x3600 GSMaP binary (``.dat.gz``) holding ``rate`` in its region.

    ``rate`` (mm/hr, ``(lat, lon)``, latitude descending) must sit on GSMaP cells
    (centres ``LAT``/``LON``; longitudes may be given in -180..180); every other cell is 0
    and NaN is written as -99 (no data).  The file is a valid gzip stream made of three
    members (rows above the region, the region's rows, rows below), so writing an hour
    compresses only the region's rows.
    """
    path = Path(path)
    lat = np.round(np.asarray(lat, dtype="f8"), 4)
    lon = np.round(np.asarray(lon, dtype="f8") % 360.0, 4)
    rate = np.asarray(rate, dtype="f4")
    if rate.shape != (lat.size, lon.size):
        raise ValueError(f"{path}: rate shape {rate.shape} != (lat {lat.size}, lon {lon.size})")
    rows = np.round((59.95 - lat) / 0.1).astype(int)
    cols = np.round((lon - 0.05) / 0.1).astype(int)
    if (
        rows.min() < 0
        or rows.max() >= NLAT
        or not np.allclose(LAT[np.clip(rows, 0, NLAT - 1)], lat)
        or not np.allclose(LON[np.clip(cols, 0, NLON - 1)], lon)
        or np.any(np.diff(rows) != 1)
    ):
        raise ValueError(f"{path}: lat/lon are not consecutive GSMaP 0.1 deg cells (lat {lat})")
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    key = (r0, r1)
    if key not in _ZERO_MEMBERS:
        _ZERO_MEMBERS[key] = (
            _gzip_member(bytes(r0 * _ROW_BYTES)),
            _gzip_member(bytes((NLAT - r1) * _ROW_BYTES)),
        )
    head, tail = _ZERO_MEMBERS[key]
    band = np.zeros((r1 - r0, NLON), dtype="<f4")
    band[:, cols] = np.where(np.isfinite(rate), rate, np.float32(-99.0))
    with atomic_path(path, suffix=".gz") as tmp:
        with open(tmp, "wb") as f:
            f.write(head)
            f.write(_gzip_member(band.tobytes()))
            f.write(tail)
    return path


def write_gsmap_netcdf(path: str | os.PathLike, start, lat, lon, rate: np.ndarray) -> Path:
    """Write one hourly GSMaP NetCDF (``hourlyPrecipRateGC`` mm/hr, ``(Time, Latitude,
    Longitude)``, latitude descending as given)."""
    path = Path(path)
    start = pd.Timestamp(start)
    rate = np.asarray(rate, dtype="f4")
    with atomic_path(path, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("Time", 1)
            nc.createDimension("Latitude", len(lat))
            nc.createDimension("Longitude", len(lon))
            t = nc.createVariable("Time", "f8", ("Time",))
            t.units = "hours since 1970-01-01 00:00:00"
            t[:] = [(start - pd.Timestamp("1970-01-01")) / pd.Timedelta("1h")]
            v = nc.createVariable("Latitude", "f4", ("Latitude",))
            v.units = "degrees_north"
            v[:] = lat
            v = nc.createVariable("Longitude", "f4", ("Longitude",))
            v.units = "degrees_east"
            v[:] = lon
            v = nc.createVariable(
                "hourlyPrecipRateGC",
                "f4",
                ("Time", "Latitude", "Longitude"),
                zlib=True,
                complevel=1,
                fill_value=np.float32(-9999.9),
            )
            v.units = "mm/hr"
            v.long_name = "Hourly precipitation rate (gauge-calibrated)"
            v.set_auto_maskandscale(False)
            v[:] = np.where(np.isfinite(rate), rate, np.float32(-9999.9))[None]
    return path
