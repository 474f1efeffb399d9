"""ERA5 hourly meteorology -> daily predictors for the SO2 model.

Hourly ``blh, t2m, d2m, u10, v10, sp`` (instantaneous) and ``tp`` (accumulated over the hour
ending at the stamp) are read with :func:`gridfuse.sources.era5.open_era5` (legacy and new CDS
NetCDF, and the new CDS ZIP of ``instant``/``accum`` streams) and reduced to product days:

* instantaneous variables: mean of the 24 hourly values of the day window;
* ``rh`` (%): hourly relative humidity from ``t2m`` and ``d2m`` (Magnus formula over water,
  Alduchov & Eskridge 1996 coefficients), then the daily mean;
* ``ws`` (m/s): daily mean of the hourly wind speed; ``wd`` (degrees, the direction the wind
  blows *from*, 0 = north, 90 = east): direction of the daily mean wind vector;
* ``tp`` (mm/day): sum of the 24 hourly accumulations ending inside the day, times 1000.

Days are processed in blocks so that memory stays bounded by ``block_days`` of hourly data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..daily import DayWindow, aggregate_daily
from .era5 import (
    check_block,
    collect_hourly,
    files_for_days,
    find_era5_files,
    load_block,
    needed_hours,
    record_gaps,
)
from .qc import SourceQC

logger = logging.getLogger(__name__)

__all__ = [
    "files_for_year",
    "MET_VARIABLES",
    "relative_humidity",
    "wind_speed_direction",
    "met_daily",
    "read_met_daily",
    "read",
]

MET_VARIABLES = ("blh", "t2m", "d2m", "u10", "v10", "sp", "tp")

_MAGNUS_A = 17.625
_MAGNUS_B = 243.04  # deg C

ATTRS = {
    "t2m": ("K", "air_temperature", "2 m temperature, daily mean"),
    "d2m": ("K", "dew_point_temperature", "2 m dew point temperature, daily mean"),
    "rh": ("%", "relative_humidity", "2 m relative humidity, daily mean of hourly values"),
    "blh": ("m", "atmosphere_boundary_layer_thickness", "boundary layer height, daily mean"),
    "sp": ("Pa", "surface_air_pressure", "surface pressure, daily mean"),
    "u10": ("m s-1", "eastward_wind", "10 m eastward wind, daily mean"),
    "v10": ("m s-1", "northward_wind", "10 m northward wind, daily mean"),
    "ws": ("m s-1", "wind_speed", "10 m wind speed, daily mean of hourly speeds"),
    "wd": ("degree", "wind_from_direction", "10 m wind direction (from) of the daily mean wind"),
    # a daily total in mm/day is the day's mean rate (an amount would be in mm)
    "tp": ("mm day-1", "lwe_precipitation_rate", "total precipitation (daily total)"),
}


def relative_humidity(t2m, d2m):
    """Relative humidity (%) from temperature and dew point (both K), Magnus formula.

    ``100 * exp(a Td / (b + Td) - a T / (b + T))`` with ``T, Td`` in deg C, ``a = 17.625``,
    ``b = 243.04`` deg C; capped at 100 %.
    """
    t = np.asarray(t2m, dtype="f8") - 273.15
    td = np.asarray(d2m, dtype="f8") - 273.15
    rh = 100.0 * np.exp(_MAGNUS_A * td / (_MAGNUS_B + td) - _MAGNUS_A * t / (_MAGNUS_B + t))
    return np.minimum(rh, 100.0)


def wind_speed_direction(u, v):
    """Wind speed and meteorological direction (degrees the wind blows from, 0..360)."""
    u = np.asarray(u, dtype="f8")
    v = np.asarray(v, dtype="f8")
    ws = np.hypot(u, v)
    wd = np.mod(np.degrees(np.arctan2(-u, -v)), 360.0)
    return ws, wd


def met_daily(hourly: xr.Dataset, days, window: DayWindow | int) -> xr.Dataset:
    """Daily meteorology from hourly ERA5 (dims ``time, lat, lon``, ERA5 units).

    Parameters
    ----------
    hourly : xarray.Dataset
        Hourly ``t2m, d2m, u10, v10, sp, blh`` (instant) and ``tp`` (m, accumulated over the
        hour ending at the stamp) as returned by ``open_era5``.
    days : array-like of dates
        Product days to compute.
    window : DayWindow or int
        Day window (or its ``utc_start_hour``).

    Returns
    -------
    xarray.Dataset
        ``t2m, d2m, rh, blh, sp, u10, v10, ws, wd, tp`` on ``(time, lat, lon)``, float32;
        a day lacking any hourly step is NaN (``attrs["days_missing"]``).
    """
    window = window if isinstance(window, DayWindow) else DayWindow(int(window))
    missing = [v for v in MET_VARIABLES if v not in hourly]
    if missing:
        raise KeyError(f"ERA5 meteorology lacks {missing}; found {sorted(hourly.data_vars)}")
    days = pd.DatetimeIndex(days).normalize()
    h = hourly.load()
    rh = xr.DataArray(relative_humidity(h.t2m, h.d2m), dims=h.t2m.dims, coords=h.t2m.coords)
    ws, _ = wind_speed_direction(h.u10, h.v10)
    derived = {"rh": rh, "ws": xr.DataArray(ws, dims=h.u10.dims, coords=h.u10.coords)}
    out: dict[str, xr.DataArray] = {}
    missing_days = 0
    for name in ("t2m", "d2m", "rh", "blh", "sp", "u10", "v10", "ws"):
        src = derived.get(name, h.get(name))
        src = src.astype("f4")
        src.attrs = {}
        out[name] = aggregate_daily(
            src, window, convention="instant", how="mean", days=days, name=name
        )
        missing_days = max(missing_days, out[name].attrs["days_missing"])
    units = str(h.tp.attrs.get("units", "m")).strip()
    factor = {"m": 1000.0, "mm": 1.0}.get(units)
    if factor is None:
        raise ValueError(f"ERA5 tp: expected units 'm' or 'mm', found {units!r}")
    tp = (h.tp * factor).astype("f4")
    tp.attrs = {}
    out["tp"] = aggregate_daily(tp, window, convention="end", how="sum", days=days, name="tp")
    out["tp"] = out["tp"].clip(min=0.0)  # ERA5 accumulations carry tiny negative round-off
    missing_days = max(missing_days, out["tp"].attrs.get("days_missing", 0))
    _, wd = wind_speed_direction(out["u10"], out["v10"])
    out["wd"] = xr.DataArray(wd.astype("f4"), dims=out["u10"].dims, coords=out["u10"].coords)
    ds = xr.Dataset({k: out[k].astype("f4") for k in ATTRS})
    for k, (u, sn, ln) in ATTRS.items():
        ds[k].attrs = {"units": u, "standard_name": sn, "long_name": ln}
    ds.attrs["days_missing"] = int(missing_days)
    return ds


def files_for_year(files: Iterable[str | os.PathLike], year: int) -> list[Path]:
    """The files a year's daily values may need, judged from dates in their names.

    A name with a date token (``YYYY``, ``YYYYMM`` or ``YYYYMMDD``) is kept for its own year,
    for December of the previous year and January of the next (day windows reach across the
    new year); names without a date token are always kept.
    """
    return files_for_days(files, pd.date_range(f"{int(year)}-01-01", f"{int(year)}-12-31"))


def read_met_daily(
    paths: Iterable[str | os.PathLike],
    days,
    window: DayWindow | int,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    block_days: int = 31,
    qc: SourceQC | None = None,
    covered=None,
) -> xr.Dataset:
    """Daily ERA5 meteorology for product ``days`` from hourly files, block by block.

    Parameters
    ----------
    paths : iterable of paths
        ERA5 files of either flavour or new-CDS ZIPs covering the days' windows (for a
        day window starting the previous day, the last hours of the previous day too).
    days : array-like of dates
        Product days.
    window : DayWindow or int
        Day window.
    bbox : (west, south, east, north), optional
        Crop to the ERA5 cells whose centres lie inside.
    block_days : int
        Days reduced at once (bounds memory).
    qc : SourceQC, optional
        Receives the per-file unit conversions, masked values, hours no file holds and
        files lacking a variable (:mod:`gridfuse.sources.qc`).
    covered : dates, optional
        Days the source covers (missing hours of other days are not recorded).
    """
    from . import registry

    qc = qc if qc is not None else SourceQC("era5_met")
    window = window if isinstance(window, DayWindow) else DayWindow(int(window))
    days = pd.DatetimeIndex(days).normalize()
    fmt = registry.get_format("era5_met")
    specs = {v: fmt.variable(v) for v in MET_VARIABLES}
    hourly = collect_hourly(list(paths), list(MET_VARIABLES), bbox, specs, qc)
    cov = days if covered is None else days[days.isin(pd.DatetimeIndex(covered).normalize())]
    record_gaps(
        hourly,
        {v: needed_hours(cov, window, "end" if v == "tp" else "instant") for v in MET_VARIABLES},
        qc,
    )
    present = [v for v in MET_VARIABLES if v in hourly.ds]
    parts = []
    done: set = set()
    one_hour = pd.Timedelta("1h")
    for i in range(0, len(days), block_days):
        block = days[i : i + block_days]
        start, end = window.bounds(block)
        sub = hourly.ds[present].sel(time=slice(start[0], end[-1]))  # tp of the last hour
        sub = check_block(load_block(sub, hourly), hourly, specs, qc, done)
        for v in MET_VARIABLES:  # a variable no file holds: NaN (its hours are recorded)
            if v not in sub:
                sub[v] = xr.full_like(sub[present[0]], np.nan).assign_attrs(units=specs[v].units)
        parts.append(met_daily(sub, block, window))
        del sub
        logger.info("ERA5 met %s..%s done", block[0].date(), (end[-1] - one_hour).date())
    ds = xr.concat(parts, dim="time")
    ds.attrs["days_missing"] = int(sum(p.attrs["days_missing"] for p in parts))
    for k in ds.data_vars:
        ds[k].attrs = parts[0][k].attrs
    nan = {k: round(float(np.isnan(ds[k].values).mean()), 4) for k in ("t2m", "tp")}
    logger.info(
        "ERA5 met daily: %d days on %dx%d cells, days_missing=%d, NaN fraction %s",
        len(days),
        ds.sizes["lat"],
        ds.sizes["lon"],
        ds.attrs["days_missing"],
        nan,
    )
    return ds


def read(req) -> xr.Dataset:
    """Registry reader (``format: era5_met``): the daily predictors of :func:`met_daily`.

    Searches ``req.folders`` for ``*.nc``/``*.zip`` files (those whose names date them far
    from the days are skipped) and keeps the ERA5 cells whose centres lie in ``req.bbox``.
    """
    paths = files_for_days(find_era5_files(req.folders), req.days)
    if not paths:
        raise FileNotFoundError(
            f"era5_met: no ERA5 .nc/.zip files for {req.days[0]:%Y-%m-%d}.."
            f"{req.days[-1]:%Y-%m-%d} under {[str(f) for f in req.folders]}"
        )
    return read_met_daily(
        paths, req.days, req.window, bbox=req.bbox, qc=req.qc, covered=req.covered
    )
