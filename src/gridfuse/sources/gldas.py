"""GLDAS-2.1 Noah 0.25 deg 3-hourly NetCDF4 (``GLDAS_NOAH025_3H.AYYYYMMDD.HHMM.021.nc4``).

``Rainf_f_tavg`` is the total precipitation rate (rain + snow forcing) in kg m-2 s-1
(= mm/s), averaged over 3 hours; mm per step = rate x 10800.  The grid is 600 x 1440 cells,
latitude -59.875..89.875 ascending, longitude -179.875..179.875, ``_FillValue`` -9999 over
water.  Which 3 hours a file averages is read from its ``time_bnds`` when present;
otherwise the provider's description (mean over the **past** 3 hours, i.e. the file stamp
ends the interval) is used.
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

__all__ = ["PATTERN", "STEPS", "gldas_name", "read_gldas_file", "write_gldas", "LAT", "LON"]

PATTERN = re.compile(r"GLDAS_NOAH025_3H\.A(\d{8})\.(\d{4})\.0\d\d\.nc4$")
LAT = np.round(-59.875 + 0.25 * np.arange(600), 4)  # ascending, as in the files
LON = np.round(-179.875 + 0.25 * np.arange(1440), 4)
STEP = pd.Timedelta("3h")
_FILL = np.float32(-9999.0)


def gldas_name(stamp) -> str:
    """File name of the 3-hourly file stamped ``stamp``."""
    return f"GLDAS_NOAH025_3H.A{pd.Timestamp(stamp):%Y%m%d.%H%M}.021.nc4"


def _interval_start(nc, path) -> pd.DatetimeIndex:
    """Start of the averaging interval of each step, from time_bnds if present."""
    if "time" not in nc.variables:
        raise KeyError(f"{path}: no time variable ({sorted(nc.variables)})")
    t = nc.variables["time"]
    stamp = netcdf_times(t, path=path)
    bname = getattr(t, "bounds", "time_bnds")
    if bname in nc.variables:
        b = nc.variables[bname][:]
        return netcdf_times(t, np.asarray(b)[:, 0], path=path)
    return stamp - STEP


def read_gldas_file(path, bbox, variable: str = "", limits: QCLimits | None = None) -> StepData:
    """One 3-hourly file -> mm per 3 h on the cells overlapping ``bbox``."""
    path = Path(path)
    qc = SourceQC(limits=limits)
    name = variable or "Rainf_f_tavg"
    try:
        with netCDF4.Dataset(path) as nc:
            var, lat, lon = netcdf_grid_variable(nc, path, name)
            units = getattr(var, "units", "")
            w, s, e, n = bbox
            lon_sl, lon_out = lon_window(lon, w, e, path)
            lat_sl = crop_slice(lat, s, n, "latitude", path)
            raw = np.asarray(var[:, lat_sl, lon_sl], dtype="f4")
            fill = getattr(var, "_FillValue", _FILL)
            missing_value = getattr(var, "missing_value", fill)
            starts = _interval_start(nc, path)
    except (OSError, RuntimeError) as err:
        raise OSError(f"{path}: cannot be read as a GLDAS NetCDF4 file ({err})") from err
    data = np.where((raw == np.float32(fill)) | (raw == np.float32(missing_value)), np.nan, raw)
    spec = registry.get_format("gldas").variable(name)
    data = check_values(data, spec, units, path=path, qc=qc, variable=name)
    data = (data * np.float32(STEP.total_seconds()))[:, ::-1, :]
    return StepData(starts, np.round(lat[lat_sl][::-1], 4), np.round(lon_out, 4), data, qc)


def _shift(index) -> pd.Timedelta:
    """Name stamp minus interval start, from the first file's ``time_bnds`` (0 or 3 h)."""
    first = index[min(index)][0]
    try:
        with netCDF4.Dataset(first) as nc:
            shift = pd.Timestamp(min(index)) - _interval_start(nc, first)[0]
    except (OSError, RuntimeError) as err:
        raise OSError(f"{first}: cannot be read as a GLDAS NetCDF4 file ({err})") from err
    if shift not in (pd.Timedelta(0), STEP):
        raise ValueError(
            f"{first}: time_bnds start {shift} before the file stamp; expected 0 or 3 hours"
        )
    return shift


# The stamp convention is read from the first file's time_bnds; a product day whose start
# is not on the 3-hour grid is an error.
STEPS = StepFormat(
    "gldas",
    PATTERN,
    lambda m: [pd.Timestamp(f"{m.group(1)} {m.group(2)}")],
    read_gldas_file,
    "3h",
    name_of=lambda t: gldas_name(pd.Timestamp(t) + STEP),
    shift=_shift,
)


def write_gldas(
    path: str | os.PathLike, stamp, lat, lon, rate: np.ndarray, compress: bool = True
) -> Path:
    """Write one 3-hourly GLDAS-2.1 file (possibly a spatial subset).

    ``rate`` (kg m-2 s-1, ``(lat, lon)``, latitude descending) is the mean over the 3 hours
    ending at ``stamp``; stored latitude ascending with ``time_bnds`` [stamp - 3 h, stamp].
    ``compress=False`` stores the data contiguous and uncompressed.
    """
    path = Path(path)
    stamp = pd.Timestamp(stamp)
    lat = np.asarray(lat, dtype="f8")
    rate = np.asarray(rate, dtype="f4")
    if lat[0] > lat[-1]:
        lat, rate = lat[::-1], rate[::-1]
    base = pd.Timestamp("2000-01-01")
    with atomic_path(path, suffix=".nc4") as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            nc.createDimension("time", 1)
            nc.createDimension("lat", lat.size)
            nc.createDimension("lon", len(lon))
            nc.createDimension("bnds", 2)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "days since 2000-01-01 00:00:00"
            t.calendar, t.bounds, t.standard_name = "standard", "time_bnds", "time"
            t[:] = [(stamp - base) / pd.Timedelta("1D")]
            b = nc.createVariable("time_bnds", "f8", ("time", "bnds"))
            b[:] = [
                [(stamp - STEP - base) / pd.Timedelta("1D"), (stamp - base) / pd.Timedelta("1D")]
            ]
            write_grid_variable(
                nc,
                "Rainf_f_tavg",
                lat,
                lon,
                np.asarray(rate[None]),
                compress=compress,
                fill=_FILL,
                attrs={
                    "units": "kg m-2 s-1",
                    "standard_name": "precipitation_flux",
                    "long_name": "Total precipitation rate",
                    "cell_methods": "time: mean",
                },
            )
            nc.title = "GLDAS2.1 LIS land surface model output"
            nc.tavg_definision = "past 3-hour average"
    return path
