"""CMORPH V1.0 (CPC/NCEI CDR) 8 km / 30 min NetCDF.

Files ``CMORPH_V1.0_ADJ_8km-30min_YYYYMMDDHH.nc`` hold two half hours (``time`` = HH:00 and
HH:30, each the start of its half hour) of ``cmorph`` (mm/hr) on the 4948 x 1649 grid:
longitude ``0.036378335 + 0.072756669 i`` E, latitude ``-59.963614 + 0.072771377 j``
(60S-60N).  Latitude order and fill are handled either way (sorted; negative = missing).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

from ..io import atomic_path
from . import registry
from ._steps import (
    StepData,
    StepFormat,
    crop_slice,
    lon_window,
    netcdf_grid_variable,
    netcdf_times,
    write_grid_variable,
)
from .qc import QCLimits, SourceQC, check_values

logger = logging.getLogger(__name__)

__all__ = [
    "PATTERN",
    "cmorph_name",
    "read_cmorph_file",
    "STEPS",
    "write_cmorph",
    "LAT",
    "LON",
]

PATTERN = re.compile(r"CMORPH_V1\.0_ADJ_8km-30min_(\d{10})\.nc$")
DLON, DLAT = 0.072756669, 0.072771377
LON = 0.036378335 + DLON * np.arange(4948)
LAT = -59.963614 + DLAT * np.arange(1649)  # ascending
_FILL = np.float32(-9999.0)


def cmorph_name(hour) -> str:
    """File name of the hour starting at ``hour``."""
    return f"CMORPH_V1.0_ADJ_8km-30min_{pd.Timestamp(hour):%Y%m%d%H}.nc"


def _starts(m: re.Match) -> list[pd.Timestamp]:
    h = pd.to_datetime(m.group(1), format="%Y%m%d%H")
    return [h, h + pd.Timedelta("30min")]


def read_cmorph_file(path, bbox, variable: str = "", limits: QCLimits | None = None) -> StepData:
    """One hourly file (two half hours) -> mm per half hour on cells overlapping ``bbox``."""
    path = Path(path)
    qc = SourceQC(limits=limits)
    name = variable or "cmorph"
    try:
        with netCDF4.Dataset(path) as nc:
            var, lat, lon = netcdf_grid_variable(nc, path, name)
            units = getattr(var, "units", "")
            flip = lat[0] > lat[-1]
            if flip:
                lat = lat[::-1]
            w, s, e, n = bbox
            lon_sl, lon_out = lon_window(lon, w, e, path)
            lat_sl = crop_slice(lat, s, n, "latitude", path)
            if flip:
                rows = slice(lat.size - lat_sl.stop, lat.size - lat_sl.start)
                raw = np.asarray(var[:, rows, lon_sl], dtype="f4")
            else:
                raw = np.asarray(var[:, lat_sl, lon_sl], dtype="f4")[:, ::-1]
            fill = getattr(var, "_FillValue", _FILL)
            missing_value = getattr(var, "missing_value", fill)
            if "time" not in nc.variables:
                raise KeyError(f"{path}: no time variable ({sorted(nc.variables)})")
            starts = netcdf_times(nc.variables["time"], path=path)
    except (OSError, RuntimeError, KeyError) as err:
        if str(path) in str(err):
            raise
        raise OSError(f"{path}: cannot be read as a CMORPH NetCDF file ({err})") from err
    # the NCEI files' fill is not documented beyond _FillValue: any negative value is
    # taken as missing (counted as missing_values, not as a plausibility failure)
    missing = (raw == np.float32(fill)) | (raw == np.float32(missing_value)) | (raw < 0)
    data = np.where(missing, np.nan, raw)
    data = check_values(
        data, registry.get_format("cmorph").variable(name), units, path=path, qc=qc, variable=name
    )
    data = data * np.float32(0.5)
    return StepData(starts, np.round(lat[lat_sl][::-1], 5), np.round(lon_out, 5), data, qc)


STEPS = StepFormat(
    "cmorph",
    PATTERN,
    _starts,
    read_cmorph_file,
    "30min",
    name_of=lambda t: cmorph_name(pd.Timestamp(t).floor("h")),
)


def write_cmorph(
    path: str | os.PathLike, hour, lat, lon, rate: np.ndarray, compress: bool = True
) -> Path:
    """Write one hourly CMORPH file (possibly a spatial subset of the 8 km grid).

    ``rate`` is ``(2, lat, lon)`` mm/hr for HH:00 and HH:30, latitude descending; stored
    latitude ascending, longitude 0..360, NaN as -9999.  ``compress=False`` stores the data
    contiguous and uncompressed.
    """
    path = Path(path)
    hour = pd.Timestamp(hour)
    lat = np.asarray(lat, dtype="f8")
    rate = np.asarray(rate, dtype="f4")
    if rate.shape != (2, lat.size, len(lon)):
        raise ValueError(f"{path}: rate shape {rate.shape} != (2, {lat.size}, {len(lon)})")
    if lat[0] > lat[-1]:
        lat, rate = lat[::-1], rate[:, ::-1]
    lon = np.asarray(lon, dtype="f8") % 360.0
    with atomic_path(path, suffix=".nc") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("time", 2)
            nc.createDimension("lat", lat.size)
            nc.createDimension("lon", lon.size)
            t = nc.createVariable("time", "f8", ("time",))
            t.units, t.calendar = "minutes since 1998-01-01 00:00:00", "standard"
            base = (hour - pd.Timestamp("1998-01-01")) / pd.Timedelta("1min")
            t[:] = [base, base + 30]
            write_grid_variable(
                nc,
                "cmorph",
                lat,
                lon,
                np.asarray(rate),
                compress=compress,
                fill=_FILL,
                attrs={
                    "units": "mm/hr",
                    "long_name": "CMORPH precipitation estimate (bias corrected)",
                },
            )
    return path
