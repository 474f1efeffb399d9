"""Fault injection over every reader: each fault is a clear error naming the file (or the
folder / config key) and what was expected, or a counted QC decision -- never a silent pass.

Every case builds a tiny valid source-year in its real file layout (2 product days, a few
cells), injects one fault, and runs it the way an ingest job does
(:func:`gridfuse.sources.ingest`, limits enforced) or, for stations,
:func:`gridfuse.stations.ingest`.  ``OUTCOMES`` at the bottom collects case -> outcome; the
table is printed by ``pytest -s -k outcome_table``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from gridfuse.grid import Grid
from gridfuse.sources import QualityError, ingest
from gridfuse.sources import tropomi as tr
from gridfuse.sources.cmorph import LAT as CM_LAT
from gridfuse.sources.cmorph import LON as CM_LON
from gridfuse.sources.cmorph import cmorph_name, write_cmorph
from gridfuse.sources.era5 import write_era5
from gridfuse.sources.gldas import gldas_name, write_gldas
from gridfuse.sources.gsmap import (
    daily_name,
    hourly_name,
    netcdf_name,
    write_gsmap_binary,
    write_gsmap_netcdf,
)
from gridfuse.sources.imerg import hhr_name, imerg_daily_name, write_imerg_daily, write_imerg_hhr
from gridfuse.stations import ingest as station_ingest
from gridfuse.stations.cma import write_cma_daily
from gridfuse.stations.cnemc import write_china_sites, write_station_list

GRID = Grid(101.0, 36.0, 103.0, 38.0, 0.1)  # 20 x 20 cells of 0.1 deg
DAYS = pd.date_range("2020-07-01", periods=2)
LAT01 = np.asarray(GRID.lat)  # IMERG / GSMaP 0.1 deg cells of GRID, north first
LON01 = np.asarray(GRID.lon)
SHAPE = GRID.shape
OUTCOMES: dict[str, str] = {}


@dataclass
class Setup:
    fmt: str
    root: Path
    days: pd.DatetimeIndex = field(default_factory=lambda: DAYS)
    window: int = 0
    grid: Grid = GRID
    options: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def run(self):
        return ingest(
            self.fmt,
            [self.root],
            self.days,
            self.window,
            self.grid,
            source=self.fmt,
            year=int(self.days[0].year),
            margin=0.0,
            options=self.options,
        )


# ------------------------------------------------------------------------- builders
def _imerg(tmp: Path) -> Setup:
    s = Setup("imerg_hhr", tmp / "imerg")
    rate = np.full(SHAPE, 1.0, "f4")
    for t in pd.date_range(DAYS[0], periods=96, freq="30min"):
        s.files.append(write_imerg_hhr(s.root / hhr_name(t), t, LAT01, LON01, rate, compress=False))
    return s


def _imerg_daily(tmp: Path) -> Setup:
    s = Setup("imerg_daily", tmp / "imerg_daily")
    for d in DAYS:
        s.files.append(
            write_imerg_daily(s.root / imerg_daily_name(d), d, LAT01, LON01, np.full(SHAPE, 5.0))
        )
    return s


def _gsmap(tmp: Path) -> Setup:
    s = Setup("gsmap_hourly", tmp / "gsmap")
    for t in pd.date_range(DAYS[0], periods=48, freq="1h"):
        s.files.append(write_gsmap_binary(s.root / hourly_name(t), LAT01, LON01, np.ones(SHAPE)))
    return s


def _gsmap_daily(tmp: Path) -> Setup:
    s = Setup("gsmap_daily", tmp / "gsmap_daily")
    for d in DAYS:
        path = s.root / daily_name(d, "00Z-23Z")
        s.files.append(write_gsmap_binary(path, LAT01, LON01, np.full(SHAPE, 0.2)))
    return s


def _gsmap_nc(tmp: Path) -> Setup:
    s = Setup("gsmap_netcdf", tmp / "gsmap_nc")
    for t in pd.date_range(DAYS[0], periods=48, freq="1h"):
        s.files.append(write_gsmap_netcdf(s.root / netcdf_name(t), t, LAT01, LON01, np.ones(SHAPE)))
    return s


GL_LAT = 38.125 - 0.25 * np.arange(10)
GL_LON = 100.875 + 0.25 * np.arange(10)


def _gldas(tmp: Path) -> Setup:
    s = Setup("gldas", tmp / "gldas")
    for stamp in pd.date_range(DAYS[0] + pd.Timedelta("3h"), periods=16, freq="3h"):
        rate = np.full((10, 10), 1.0 / 3600, "f4")  # 1 mm/h
        s.files.append(write_gldas(s.root / gldas_name(stamp), stamp, GL_LAT, GL_LON, rate))
    return s


CM_I = np.flatnonzero((CM_LON > 100.95) & (CM_LON < 103.05))
CM_J = np.flatnonzero((CM_LAT > 35.95) & (CM_LAT < 38.05))[::-1]


def _cmorph(tmp: Path) -> Setup:
    s = Setup("cmorph", tmp / "cmorph")
    rate = np.ones((2, CM_J.size, CM_I.size), "f4")
    for h in pd.date_range(DAYS[0], periods=48, freq="1h"):
        s.files.append(write_cmorph(s.root / cmorph_name(h), h, CM_LAT[CM_J], CM_LON[CM_I], rate))
    return s


ERA_LAT = 38.0 - 0.25 * np.arange(9)
ERA_LON = 101.0 + 0.25 * np.arange(9)


def _era5_ds(times, seed=0, variables=("tp",)):
    rng = np.random.default_rng(seed)
    shape = (times.size, ERA_LAT.size, ERA_LON.size)
    make = {
        "tp": lambda: (rng.gamma(0.6, 0.0004, shape) * (rng.random(shape) < 0.6), "m"),
        "t2m": lambda: (285 + 5 * rng.random(shape), "K"),
        "d2m": lambda: (275 + 5 * rng.random(shape), "K"),
        "u10": lambda: (3 * rng.standard_normal(shape), "m s**-1"),
        "v10": lambda: (3 * rng.standard_normal(shape), "m s**-1"),
        "sp": lambda: (80000 + 500 * rng.random(shape), "Pa"),
        "blh": lambda: (300 + 1000 * rng.random(shape), "m"),
    }
    data = {}
    for v in variables:
        vals, units = make[v]()
        data[v] = (("time", "lat", "lon"), vals.astype("f4"), {"units": units})
    return xr.Dataset(data, coords={"time": times, "lat": ERA_LAT, "lon": ERA_LON})


def _era5(tmp: Path, days=DAYS, flavour="new", zip_streams=False) -> Setup:
    s = Setup("era5", tmp / "era5", days=days)
    months = pd.period_range(days[0], days[-1], freq="M")
    for m in months:
        first = m.start_time
        last = min(m.end_time.floor("h") + pd.Timedelta("1h"), days[-1] + pd.Timedelta("1D"))
        times = pd.date_range(first, last, freq="1h")
        suffix = "zip" if zip_streams else "nc"
        path = s.root / f"era5_tp_{m.year}{m.month:02d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds = _era5_ds(times, seed=m.month, variables=("tp", "t2m") if zip_streams else ("tp",))
        s.files.append(write_era5(path, ds, flavour=flavour, zip_streams=zip_streams))
    return s


MET = ("t2m", "d2m", "u10", "v10", "sp", "blh", "tp")


def _era5_met(tmp: Path) -> Setup:
    s = Setup("era5_met", tmp / "era5_met")
    s.root.mkdir(parents=True)
    for k, d in enumerate(DAYS):
        times = pd.date_range(d, periods=24 if k == 0 else 25, freq="1h")
        path = s.root / f"era5_met_{d:%Y%m%d}.nc"
        s.files.append(write_era5(path, _era5_ds(times, k, MET), flavour="new"))
    return s


def _quads(lon0, lat0, dlon, dlat, ns, ng):
    lo = lon0 + dlon * np.arange(ng)[None, :].repeat(ns, 0)
    la = lat0 + dlat * np.arange(ns)[:, None].repeat(ng, 1)
    return np.stack([lo, lo + dlon, lo + dlon, lo], -1), np.stack(
        [la, la, la + dlat, la + dlat], -1
    )


def _tropomi(tmp: Path, column=2e-4) -> Setup:
    s = Setup("tropomi_l2", tmp / "tropomi", options={"grid_res": 0.05, "cloud_max": 0.3})
    s.root.mkdir(parents=True)
    ns, ng = 55, 55
    lon_b, lat_b = _quads(100.95, 35.95, 0.04, 0.04, ns, ng)
    rng = np.random.default_rng(1)
    for k, d in enumerate(DAYS):
        start = dt.datetime(d.year, d.month, d.day, 5, 0, 0)
        name = tr.l2_filename(start, start + dt.timedelta(minutes=100), 9000 + k)
        col = (column + 1e-5 * rng.standard_normal((ns, ng))).astype("f4")
        s.files.append(
            tr.write_l2(
                s.root / name,
                column=col,
                lon_bounds=lon_b,
                lat_bounds=lat_b,
                qa_value=np.ones((ns, ng)),
                cloud_fraction=np.zeros((ns, ng)),
                reference_time=np.datetime64(f"{d:%Y-%m-%d}"),
                delta_time_ms=5 * 3600 * 1000 + np.arange(ns) * 840,
                orbit=9000 + k,
            )
        )
    return s


def _write_tif(path, values, crs="EPSG:4326", transform=None, units=None):
    prof = dict(
        driver="GTiff",
        height=values.shape[0],
        width=values.shape[1],
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform if transform is not None else GRID.transform,
        nodata=-9999.0,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(values.astype("float32"), 1)
        if units:
            dst.update_tags(units=units)
    return path


def _geotiff(tmp: Path) -> Setup:
    s = Setup("geotiff_daily", tmp / "tif")
    for k, d in enumerate(DAYS):
        s.files.append(
            _write_tif(s.root / f"chirps-v2.0.{d:%Y.%m.%d}.tif", np.full(GRID.shape, 3.0 + k))
        )
    return s


def _netcdf(tmp: Path, days=DAYS, units="mm/day") -> Setup:
    s = Setup("netcdf_daily", tmp / "nc", days=days)
    s.root.mkdir(parents=True)
    vals = np.full((len(days),) + GRID.shape, 4.0, "f4")
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), vals, {"units": units})},
        coords={"time": days, "lat": GRID.lat, "lon": GRID.lon},
    )
    path = s.root / f"persiann_{days[0]:%Y}.nc"
    ds.to_netcdf(path)
    s.files.append(path)
    return s


BUILD: dict[str, Callable[[Path], Setup]] = {
    "imerg_hhr": _imerg,
    "imerg_daily": _imerg_daily,
    "gsmap_hourly": _gsmap,
    "gsmap_daily": _gsmap_daily,
    "gsmap_netcdf": _gsmap_nc,
    "gldas": _gldas,
    "cmorph": _cmorph,
    "era5": _era5,
    "era5_met": _era5_met,
    "tropomi_l2": _tropomi,
    "geotiff_daily": _geotiff,
    "netcdf_daily": _netcdf,
}


# ------------------------------------------------------------------------- fault helpers
def _h5_set(path: Path, dataset: str, fn) -> None:
    import h5py

    with h5py.File(path, "r+") as h:
        d = h[dataset]
        d[...] = fn(d[...])


def _nc_set(path: Path, var: str, fn=None, attrs=None, group=None) -> None:
    with netCDF4.Dataset(path, "r+") as nc:
        g = nc[group] if group else nc
        v = g.variables[var]
        v.set_auto_maskandscale(False)
        if fn is not None:
            v[:] = fn(v[:])
        for k, val in (attrs or {}).items():
            v.setncattr(k, val)


def _nc_rename(path: Path, old: str, new: str, group=None) -> None:
    with netCDF4.Dataset(path, "r+") as nc:
        (nc[group] if group else nc).renameVariable(old, new)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _gsmap_values(path: Path, value) -> None:
    """Rewrite a GSMaP binary of the test cells with ``value``."""
    write_gsmap_binary(path, LAT01, LON01, np.broadcast_to(np.float32(value), SHAPE).copy())


def _ds_rewrite(path: Path, fn) -> None:
    ds = xr.open_dataset(path).load()
    ds.close()
    out = fn(ds)
    path.unlink()
    out.to_netcdf(path)


# ------------------------------------------------------------------------- the cases
@dataclass
class Case:
    fmt: str
    fault: Callable[[Setup], str]  # injects the fault; returns what the outcome must name
    kind: str  # "error" or a QC check that must be counted (n > 0) in a passing run
    variable: str = ""


def _one_cell(path, dataset, value):
    def fn(a):
        a = a.copy()
        a.flat[0] = value
        return a

    _h5_set(path, dataset, fn)


CASES: dict[str, Case] = {
    # IMERG half-hourly HDF5
    "imerg_1e6_one_cell": Case(
        "imerg_hhr",
        lambda s: _one_cell(s.files[3], "Grid/precipitation", 1e6) or s.files[3].name,
        "out_of_range",
        "precipitation",
    ),
    "imerg_1e6_whole_granule": Case(
        "imerg_hhr",
        lambda s: (
            _h5_set(s.files[5], "Grid/precipitation", lambda a: a * 0 + 1e6) or s.files[5].name
        ),
        "error",
    ),
    "imerg_corrupt_granule_2.6e34": Case(
        "imerg_hhr",
        lambda s: (
            _h5_set(s.files[7], "Grid/precipitation", lambda a: a * 0 + 2.6e34) or s.files[7].name
        ),
        "error",
    ),
    "imerg_negative_values": Case(
        "imerg_hhr",
        lambda s: _one_cell(s.files[2], "Grid/precipitation", -3.0) or s.files[2].name,
        "out_of_range",
        "precipitation",
    ),
    "imerg_not_hdf5": Case("imerg_hhr", lambda s: _garbage(s.files[9]) or s.files[9].name, "error"),
    "imerg_truncated_file": Case(
        "imerg_hhr", lambda s: _truncate(s.files[10]) or s.files[10].name, "error"
    ),
    "imerg_units_wrong": Case(
        "imerg_hhr",
        lambda s: _h5_attrs(s.files[4], "Grid/precipitation", units="furlongs") or s.files[4].name,
        "error",
    ),
    "imerg_variable_renamed": Case(
        "imerg_hhr",
        lambda s: _h5_rename(s.files[6], "Grid/precipitation", "Grid/precip") or s.files[6].name,
        "error",
    ),
    "imerg_missing_granules": Case(
        "imerg_hhr", lambda s: _delete(s.files[50:60]) or s.files[50].name, "error"
    ),
    "imerg_one_missing_granule_counted": Case(
        "imerg_hhr", lambda s: _delete(s.files[70:71]) or s.files[70].name, "error"
    ),
    # IMERG daily NetCDF4
    "imerg_daily_1e6": Case(
        "imerg_daily",
        lambda s: _nc_set(s.files[0], "precipitation", lambda a: a * 0 + 1e6) or s.files[0].name,
        "error",
    ),
    "imerg_daily_missing_day": Case(
        "imerg_daily", lambda s: _delete(s.files[1:]) or s.files[1].name, "error"
    ),
    # GSMaP hourly binary
    "gsmap_1e6_hour": Case(
        "gsmap_hourly", lambda s: _gsmap_values(s.files[5], 1e6) or s.files[5].name, "error"
    ),
    "gsmap_truncated_gzip": Case(
        "gsmap_hourly", lambda s: _truncate(s.files[8], 0.02) or s.files[8].name, "error"
    ),
    "gsmap_not_gzip": Case(
        "gsmap_hourly", lambda s: _garbage(s.files[9]) or s.files[9].name, "error"
    ),
    "gsmap_missing_hours": Case(
        "gsmap_hourly", lambda s: _delete(s.files[30:36]) or "gsmap_*.20200702.06", "error"
    ),
    "gsmap_missing_codes_counted": Case(
        "gsmap_hourly",
        lambda s: _gsmap_values(s.files[3], -99.0) or s.files[3].name,
        "error",  # a whole hour of no-data loses both days' cells -> days have no valid cell
    ),
    # GSMaP daily / NetCDF
    "gsmap_daily_1e6": Case(
        "gsmap_daily",
        lambda s: (
            write_gsmap_binary(s.files[1], LAT01, LON01, np.full(SHAPE, 1e6)) and s.files[1].name
        ),
        "error",
    ),
    "gsmap_netcdf_1e6_one_cell": Case(
        "gsmap_netcdf",
        lambda s: _nc_set(s.files[4], "hourlyPrecipRateGC", _first_cell(1e6)) or s.files[4].name,
        "out_of_range",
        "hourlyPrecipRateGC",
    ),
    "gsmap_netcdf_units_mm_per_day": Case(
        "gsmap_netcdf",
        lambda s: (
            [_nc_set(f, "hourlyPrecipRateGC", attrs={"units": "mm/day"}) for f in s.files]
            and s.files[0].name
        ),
        "units_converted",
        "hourlyPrecipRateGC",
    ),
    # GLDAS
    "gldas_1e6": Case(
        "gldas",
        lambda s: _nc_set(s.files[2], "Rainf_f_tavg", lambda a: a * 0 + 1e6) or s.files[2].name,
        "error",
    ),
    "gldas_units_kelvin": Case(
        "gldas",
        lambda s: _nc_set(s.files[1], "Rainf_f_tavg", attrs={"units": "K"}) or s.files[1].name,
        "error",
    ),
    "gldas_all_fill": Case(
        "gldas",
        lambda s: (
            _nc_set(s.files[10], "Rainf_f_tavg", lambda a: a * 0 - 9999.0) or s.files[10].name
        ),
        "error",
    ),
    "gldas_corrupt": Case("gldas", lambda s: _garbage(s.files[3]) or s.files[3].name, "error"),
    "gldas_bad_time_units": Case(
        "gldas",
        lambda s: (
            _nc_set(s.files[0], "time", attrs={"units": "fortnights since the flood"})
            or s.files[0].name
        ),
        "error",
    ),
    # CMORPH
    "cmorph_1e6": Case(
        "cmorph",
        lambda s: _nc_set(s.files[4], "cmorph", lambda a: a * 0 + 1e6) or s.files[4].name,
        "error",
    ),
    "cmorph_no_time": Case(
        "cmorph", lambda s: _nc_rename(s.files[6], "time", "tyme") or s.files[6].name, "error"
    ),
    "cmorph_one_cell_high": Case(
        "cmorph",
        lambda s: _nc_set(s.files[6], "cmorph", _first_cell(9e3)) or s.files[6].name,
        "out_of_range",
        "cmorph",
    ),
    # ERA5 precipitation
    "era5_negative_tp": Case(
        "era5",
        lambda s: (
            _era5_tp(
                s.files[0],
                lambda a: np.where(np.arange(a.size).reshape(a.shape) % 3 == 0, -0.01, a),
            )
            or s.files[0].name
        ),
        "error",
    ),
    "era5_one_negative_cell": Case(
        "era5",
        lambda s: _era5_tp(s.files[0], _first_cell(-0.002)) or s.files[0].name,
        "out_of_range",
        "tp",
    ),
    "era5_mm_labelled_m": Case(
        "era5", lambda s: _era5_tp(s.files[0], lambda a: a * 1000) or s.files[0].name, "error"
    ),
    "era5_units_mm_converted": Case(
        "era5",
        lambda s: _era5_tp(s.files[0], lambda a: a * 1000, units="mm") or s.files[0].name,
        "units_converted",
        "tp",
    ),
    "era5_all_nan_tp": Case(
        "era5", lambda s: _era5_tp(s.files[0], lambda a: a * np.nan) or s.files[0].name, "error"
    ),
    "era5_tp_renamed": Case(
        "era5", lambda s: _nc_rename(s.files[0], "tp", "tp_renamed") or "tp", "error"
    ),
    "era5_corrupt_file": Case("era5", lambda s: _garbage(s.files[0]) or s.files[0].name, "error"),
    "era5_bad_time_units": Case(
        "era5",
        lambda s: (
            _nc_set(s.files[0], "valid_time", attrs={"units": "parsecs since 1970-01-01"})
            or s.files[0].name
        ),
        "error",
    ),
    "era5_units_furlongs": Case(
        "era5",
        lambda s: _nc_set(s.files[0], "tp", attrs={"units": "furlongs"}) or s.files[0].name,
        "error",
    ),
    "era5_legacy_scale_x5.6": Case(
        "era5",
        lambda s: _legacy_era5(s, scale=5.6) or s.files[0].name,
        "error",
    ),
    "era5_missing_month": Case(
        "era5", lambda s: _era5_two_months(s, drop=1) or "tp 2020-08-01T01", "error"
    ),
    "era5_m_labelled_mm": Case(
        "era5", lambda s: _era5_month_relabelled(s) or s.files[0].name, "error"
    ),
    "era5_zip_member_corrupt": Case(
        "era5",
        lambda s: _corrupt_zip_member(s) or "data_stream-oper_stepType-accum.nc",
        "error",
    ),
    "era5_zip_truncated": Case(
        "era5", lambda s: _era5_zip(s) or _truncate(s.files[0], 0.5) or s.files[0].name, "error"
    ),
    # ERA5-met
    "era5_met_t2m_degC_labelled_K": Case(
        "era5_met",
        lambda s: _nc_set(s.files[0], "t2m", lambda a: a - 273.15) or s.files[0].name,
        "error",
    ),
    "era5_met_t2m_labelled_degC": Case(
        "era5_met",
        lambda s: (
            [_nc_set(f, "t2m", lambda a: a - 273.15, {"units": "degC"}) for f in s.files]
            and s.files[0].name
        ),
        "units_converted",
        "t2m",
    ),
    "era5_met_blh_minus_500_everywhere": Case(
        "era5_met",
        lambda s: _nc_set(s.files[1], "blh", lambda a: a * 0 - 500) or s.files[1].name,
        "error",
    ),
    "era5_met_blh_minus_500_one_cell": Case(
        "era5_met",
        lambda s: _nc_set(s.files[1], "blh", _first_cell(-500.0)) or s.files[1].name,
        "out_of_range",
        "blh",
    ),
    "era5_met_variable_missing_in_one_file": Case(
        "era5_met",
        lambda s: _ds_rewrite(s.files[1], lambda d: d.drop_vars("blh")) or s.files[1].name,
        "error",
    ),
    "era5_met_sp_in_hPa_labelled": Case(
        "era5_met",
        lambda s: (
            [_nc_set(f, "sp", lambda a: a / 100, {"units": "hPa"}) for f in s.files]
            and s.files[0].name
        ),
        "units_converted",
        "sp",
    ),
    "era5_met_empty_folder": Case("era5_met", lambda s: _delete(s.files) or str(s.root), "error"),
    # TROPOMI
    "tropomi_columns_in_DU": Case(
        "tropomi_l2",
        lambda s: (
            _nc_set(
                s.files[0],
                "sulfurdioxide_total_vertical_column",
                lambda a: a * 2241.15,
                group="PRODUCT",
            )
            or s.files[0].name
        ),
        "error",
    ),
    "tropomi_labelled_DU_converted": Case(
        "tropomi_l2",
        lambda s: (
            [
                _nc_set(
                    f,
                    "sulfurdioxide_total_vertical_column",
                    lambda a: a * 2241.15,
                    {"units": "DU"},
                    "PRODUCT",
                )
                for f in s.files
            ]
            and s.files[0].name
        ),
        "units_converted",
        "sulfurdioxide_total_vertical_column",
    ),
    "tropomi_missing_orbit": Case(
        "tropomi_l2", lambda s: _delete(s.files[1:]) or "2020-07-02", "error"
    ),
    "tropomi_column_renamed": Case(
        "tropomi_l2",
        lambda s: (
            _nc_rename(s.files[1], "sulfurdioxide_total_vertical_column", "so2", "PRODUCT")
            or s.files[1].name
        ),
        "error",
    ),
    "tropomi_empty_folder": Case("tropomi_l2", lambda s: _delete(s.files) or str(s.root), "error"),
    "tropomi_corrupt_orbit": Case(
        "tropomi_l2", lambda s: _garbage(s.files[0]) or s.files[0].name, "error"
    ),
    "tropomi_no_product_group": Case(
        "tropomi_l2", lambda s: _tropomi_without_product(s.files[0]) or s.files[0].name, "error"
    ),
    "tropomi_absurd_pixels": Case(
        "tropomi_l2",
        lambda s: (
            _nc_set(
                s.files[0],
                "sulfurdioxide_total_vertical_column",
                _cell(5.0, 20 * 55 + 20),
                group="PRODUCT",
            )
            or s.files[0].name
        ),
        "out_of_range",
        "sulfurdioxide_total_vertical_column",
    ),
    # daily GeoTIFF / NetCDF
    "geotiff_1e6": Case(
        "geotiff_daily",
        lambda s: _write_tif(s.files[0], np.full(GRID.shape, 1e6)) and s.files[0].name,
        "error",
    ),
    "geotiff_corrupt": Case(
        "geotiff_daily", lambda s: _garbage(s.files[1]) or s.files[1].name, "error"
    ),
    "geotiff_negative_cell": Case(
        "geotiff_daily",
        lambda s: (
            _write_tif(
                s.files[0],
                np.where(np.indices(GRID.shape)[0] + np.indices(GRID.shape)[1] == 0, -5.0, 3.0),
            )
            and s.files[0].name
        ),
        "out_of_range",
        "precip",
    ),
    "geotiff_missing_day": Case(
        "geotiff_daily", lambda s: _delete(s.files[1:]) or "2020-07-02", "error"
    ),
    "netcdf_units_unknown": Case(
        "netcdf_daily",
        lambda s: _nc_set(s.files[0], "precip", attrs={"units": "barrels"}) or s.files[0].name,
        "error",
    ),
    "netcdf_in_metres": Case(
        "netcdf_daily",
        lambda s: (
            _nc_set(s.files[0], "precip", lambda a: a / 1000, {"units": "m"}) or s.files[0].name
        ),
        "units_converted",
        "precip",
    ),
    "netcdf_projected_without_crs": Case(
        "netcdf_daily", lambda s: _utm_netcdf(s.files[0], crs=False) or s.files[0].name, "error"
    ),
    "netcdf_missing_day": Case(
        "netcdf_daily",
        lambda s: _ds_rewrite(s.files[0], lambda d: d.isel(time=[0])) or "2020-07-02",
        "error",
    ),
    "netcdf_all_nan": Case(
        "netcdf_daily",
        lambda s: _nc_set(s.files[0], "precip", lambda a: a * np.nan) or s.files[0].name,
        "error",
    ),
}


def _first_cell(value):
    return _cell(value, 0)


def _cell(value, index):
    def fn(a):
        a = np.array(a, copy=True)
        a.flat[index] = value
        return a

    return fn


def _h5_attrs(path: Path, dataset: str, **attrs) -> None:
    import h5py

    with h5py.File(path, "r+") as h:
        for k, v in attrs.items():
            for name in (k, k.capitalize()):
                if name in h[dataset].attrs:
                    h[dataset].attrs[name] = np.bytes_(v)


def _h5_rename(path: Path, old: str, new: str) -> None:
    import h5py

    with h5py.File(path, "r+") as h:
        h.move(old, new)


def _delete(files) -> None:
    for f in files:
        Path(f).unlink()


def _era5_tp(path: Path, fn, units=None) -> None:
    _nc_set(path, "tp", fn, {"units": units} if units else None)


def _legacy_era5(s: Setup, scale: float) -> None:
    """Rewrite the month as a legacy (int16-packed) file whose scale_factor is off by
    ``scale`` (a corrupt download: every value stretched around the packing offset)."""
    ds = xr.open_dataset(s.files[0]).load()
    ds.close()
    ds = ds.rename({"valid_time": "time", "latitude": "lat", "longitude": "lon"})
    s.files[0].unlink()
    write_era5(s.files[0], ds[["tp"]].drop_vars(["number", "expver"], errors="ignore"))
    with netCDF4.Dataset(s.files[0], "r+") as nc:
        nc["tp"].scale_factor = nc["tp"].scale_factor * scale


def _era5_two_months(s: Setup, drop: int) -> None:
    """Replace the source-year by July and August files; remove one of them."""
    days = pd.date_range("2020-07-01", "2020-08-31")
    for f in s.files:
        f.unlink()
    new = _era5(s.root.parent / "tmp_era5", days=days)
    for f in new.files:
        shutil.move(f, s.root / f.name)
    s.files[:] = [s.root / f.name for f in new.files]
    s.days = days
    s.files[drop].unlink()


def _era5_month_relabelled(s: Setup) -> None:
    """A whole month whose tp (in m) is labelled mm."""
    days = pd.date_range("2020-07-01", "2020-07-31")
    s.files[0].unlink()
    new = _era5(s.root.parent / "tmp_era5", days=days)
    shutil.move(new.files[0], s.files[0])
    s.days = days
    _nc_set(s.files[0], "tp", attrs={"units": "mm"})


def _era5_zip(s: Setup) -> None:
    s.files[0].unlink()
    new = _era5(s.root.parent / "tmp_era5", zip_streams=True)
    s.files[0] = s.root / new.files[0].name
    shutil.move(new.files[0], s.files[0])


def _corrupt_zip_member(s: Setup) -> None:
    """A CDS ZIP whose accum member has damaged bytes (its CRC no longer matches)."""
    _era5_zip(s)
    with zipfile.ZipFile(s.files[0]) as zf:
        info = zf.getinfo("data_stream-oper_stepType-accum.nc")
    data = bytearray(s.files[0].read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 2000
    data[start : start + 50] = bytes(50)
    s.files[0].write_bytes(bytes(data))


def _tropomi_without_product(path: Path) -> None:
    with netCDF4.Dataset(path, "r+") as nc:
        nc.renameGroup("PRODUCT", "PRODUCT_OLD")


def _utm_netcdf(path: Path, crs: bool) -> None:
    """Replace the file by the same field on a UTM zone 47N grid (x/y in metres)."""
    x = 500000.0 + 1000.0 * np.arange(30)
    y = 4000000.0 + 1000.0 * np.arange(25)
    ds = xr.Dataset(
        {"precip": (("time", "y", "x"), np.full((2, 25, 30), 4.0, "f4"), {"units": "mm/day"})},
        coords={
            "time": DAYS,
            "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
        },
    )
    if crs:
        ds["precip"].attrs["grid_mapping"] = "crs"
        ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": rasterio.crs.CRS.from_epsg(32647).to_wkt()})
    path.unlink()
    ds.to_netcdf(path)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_reader_fault(case_id, tmp_path):
    case = CASES[case_id]
    setup = BUILD[case.fmt](tmp_path)
    named = case.fault(setup)
    assert named, f"{case_id}: the fault must say what the outcome names"
    if case.kind == "error":
        with pytest.raises((QualityError, ValueError, OSError, KeyError)) as err:
            setup.run()
        message = str(err.value)
        assert str(named) in message, f"{case_id}: {message!r} does not name {named!r}"
        lines = message.splitlines()
        shown = lines[1].strip() if len(lines) > 1 else lines[0]
        OUTCOMES[case_id] = f"error: {type(err.value).__name__}: {shown[:200]}"
    else:
        ds, table = setup.run()
        rows = table[(table["check"] == case.kind) & (table["file"].fillna("") == "")]
        if case.variable:
            rows = rows[rows["variable"] == case.variable]
        assert rows["n"].sum() > 0, f"{case_id}: no {case.kind} counted:\n{table}"
        OUTCOMES[case_id] = f"counted: {case.kind} {case.variable} n={int(rows['n'].sum())}"


# ------------------------------------------------------------------------- more than faults
def test_clean_source_years_pass_with_nothing_lost(tmp_path):
    for fmt, build in BUILD.items():
        setup = build(tmp_path / fmt)
        ds, table = setup.run()
        summary = table[table["file"].fillna("") == ""].set_index("check")
        assert int(summary.loc["days_lost", "n"]) == 0, fmt
        assert int(summary.loc["files_read", "n"]) > 0, fmt
        masked = table[(table["check"] == "out_of_range") & (table["file"].fillna("") == "")]
        assert int(masked["n"].sum()) == 0, fmt


def test_projected_netcdf_with_crs_is_reprojected(tmp_path):
    setup = _netcdf(tmp_path)
    _utm_netcdf(setup.files[0], crs=True)
    setup.grid = Grid(99.0, 36.1, 99.2, 36.3, 0.05)  # inside the UTM 47N grid
    ds, table = setup.run()
    assert ds["precip"].dims == ("time", "lat", "lon")
    assert np.nanmax(ds["precip"].values) == pytest.approx(4.0)
    assert (np.diff(ds["lat"].values) < 0).all()
    assert 98.5 < float(ds["lon"].min()) < 99.2


def test_neighbouring_year_folders_may_be_absent(tmp_path):
    # a per-year {year} path: the job also searches the years before and after
    setup = _geotiff(tmp_path)
    year = setup.root / "2020"
    year.mkdir()
    for f in setup.files:
        shutil.move(f, year / f.name)
    ds, _ = ingest(
        "geotiff_daily",
        [year, setup.root / "2019", setup.root / "2021"],
        DAYS,
        0,
        GRID,
        margin=0.0,
    )
    assert np.isfinite(ds["precip"].values).all()
    nc = _netcdf(tmp_path / "n")
    ds, _ = ingest("netcdf_daily", [nc.root, tmp_path / "nope"], DAYS, 0, GRID, margin=0.0)
    assert np.isfinite(ds["precip"].values).all()


def test_range_override_masks_more(tmp_path):
    setup = _imerg(tmp_path)
    ds, table = ingest(
        "imerg_hhr",
        [setup.root],
        DAYS,
        0,
        GRID,
        margin=0.0,
        limits={
            "ranges": {"precipitation": [0, 0.5]},
            "max_masked_fraction": 1.0,
            "max_masked_file_fraction": 1.0,
            "max_lost_days": 1.0,
        },
    )
    rows = table[(table["check"] == "out_of_range") & (table["file"].fillna("") == "")]
    assert rows["n"].sum() == 96 * 400 and np.isnan(ds["precip"].values).all()


def test_limits_are_configurable(tmp_path):
    setup = _imerg(tmp_path)
    _delete(setup.files[50:60])
    with pytest.raises(QualityError, match="max_lost_days"):
        setup.run()
    ds, table = ingest(
        "imerg_hhr", [setup.root], DAYS, 0, GRID, margin=0.0, limits={"max_lost_days": 0.6}
    )
    assert int(table.loc[table["check"] == "days_lost", "n"].iloc[0]) == 1
    missing = table[(table["check"] == "files_missing") & (table["file"].fillna("") != "")]
    assert len(missing) == 10 and setup.files[50].name in set(missing["file"])


# ------------------------------------------------------------------------- stations
def _cma(tmp: Path, months=("2020-06", "2020-07", "2020-08")):
    days = pd.date_range(f"{months[0]}-01", pd.Period(months[-1]).end_time.normalize())
    st = pd.DataFrame(
        {
            "station": ["52866", "52818", "56029"],
            "lat": [36.6, 36.4, 36.1],
            "lon": [101.7, 101.2, 101.5],
            "elevation": [2295.0, 2800.0, 3000.0],
        }
    )
    vals = pd.DataFrame(
        [(s, d, 1.0) for s in st["station"] for d in days], columns=["station", "date", "value"]
    )
    files = write_cma_daily(vals, st, tmp / "cma")
    return tmp / "cma", files, days


def _cma_run(folder, days):
    return station_ingest(
        "precip",
        "cma_daily",
        folder,
        None,
        Grid(101.0, 36.0, 102.0, 37.0, 0.01),
        days[0],
        days[-1],
        12,
    )


def _outcome(case_id, qc, check):
    n = int(qc.loc[(qc["check"] == check) & (qc["station"] == "*"), "n"].sum())
    OUTCOMES[case_id] = f"counted: {check} n={n}"
    return n


def test_cma_missing_month_fails_naming_it(tmp_path):
    folder, files, days = _cma(tmp_path)
    files[1].unlink()
    with pytest.raises(ValueError, match=files[1].name) as err:
        _cma_run(folder, days)
    OUTCOMES["cma_missing_month"] = f"error: {str(err.value).splitlines()[1].strip()[:150]}"


def test_cma_truncated_month_fails_naming_it(tmp_path):
    folder, files, days = _cma(tmp_path)
    lines = files[1].read_text().splitlines()
    files[1].write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    with pytest.raises(ValueError, match=files[1].name) as err:
        _cma_run(folder, days)
    OUTCOMES["cma_truncated_month"] = f"error: {str(err.value).splitlines()[1].strip()[:150]}"


def test_cma_cut_last_line_is_counted(tmp_path):
    folder, files, days = _cma(tmp_path)
    text = files[2].read_text()
    files[2].write_text(text[: text.rstrip("\n").rfind(" ")])  # the last line cut mid-way
    daily, _, qc = _cma_run(folder, days)
    assert _outcome("cma_cut_last_line", qc, "partial_row") == 1
    assert _outcome("cma_cut_last_line_month", qc, "incomplete_month") >= 1


def test_cma_year_written_19_is_counted(tmp_path):
    folder, files, days = _cma(tmp_path)
    lines = files[0].read_text().splitlines()
    parts = lines[0].split()
    parts[4] = "19"
    lines[0] = " ".join(parts)
    files[0].write_text("\n".join(lines) + "\n")
    daily, _, qc = _cma_run(folder, days)
    assert _outcome("cma_row_year_19", qc, "date_mismatch") == 1


def test_cma_file_name_year_19_fails(tmp_path):
    folder, files, days = _cma(tmp_path)
    files[1].rename(files[1].with_name("SURF_CLI_CHN_MUL_DAY-PRE-13011-2007.TXT"))
    with pytest.raises(ValueError, match=files[1].name) as err:
        _cma_run(folder, days)
    OUTCOMES["cma_file_name_year_19"] = f"error: {str(err.value).splitlines()[1].strip()[:150]}"


def test_cma_absurd_code_is_counted(tmp_path):
    folder, files, days = _cma(tmp_path)
    text = files[0].read_text().splitlines()
    parts = text[3].split()
    parts[9] = "999999"
    text[3] = " ".join(parts)
    files[0].write_text("\n".join(text) + "\n")
    daily, _, qc = _cma_run(folder, days)
    assert _outcome("cma_absurd_code", qc, "unknown_code") == 1


def _cnemc(tmp: Path, n_days=6):
    days = pd.date_range("2019-01-01", periods=n_days)
    times = pd.date_range(days[0] + pd.Timedelta("1h"), days[-1] + pd.Timedelta("1D"), freq="1h")
    rows = [(s, t, "SO2", 10.0 + (hash((s, t)) % 7)) for s in ("1001A", "1002A") for t in times]
    hourly = pd.DataFrame(rows, columns=["station", "time", "type", "value"])
    folder = tmp / "cnemc"
    files = write_china_sites(hourly, folder)
    write_station_list(
        pd.DataFrame({"station": ["1001A", "1002A"], "lon": [112.4, 112.5], "lat": [37.8, 37.9]}),
        folder / "station_list.csv",
    )
    return folder, files, days


def _cnemc_run(folder, days, qc=None):
    return station_ingest(
        "so2",
        "cnemc",
        folder,
        None,
        Grid(112.0, 37.5, 113.0, 38.5, 0.01),
        days[0],
        days[-1],
        16,
        qc=qc,
    )


def test_cnemc_missing_days_fail_naming_files(tmp_path):
    folder, files, days = _cnemc(tmp_path)
    names = [f.name for f in files[2:4]]
    for f in files[2:4]:
        f.unlink()
    with pytest.raises(ValueError, match=names[0]) as err:
        _cnemc_run(folder, days)
    OUTCOMES["cnemc_missing_days"] = f"error: {str(err.value).splitlines()[1].strip()[:150]}"


def test_cnemc_truncated_file_is_counted(tmp_path):
    folder, files, days = _cnemc(tmp_path)
    lines = files[3].read_bytes().split(b"\r\n")
    files[3].write_bytes(b"\r\n".join(lines[: len(lines) * 9 // 10]))
    daily, _, qc = _cnemc_run(folder, days)
    assert _outcome("cnemc_truncated_file", qc, "truncated_file") > 0


def test_cnemc_absurd_values_are_counted(tmp_path):
    folder, files, days = _cnemc(tmp_path)
    text = files[2].read_text()
    files[2].write_text(text.replace(",SO2,1", ",SO2,1000000", 3))
    daily, _, qc = _cnemc_run(folder, days, qc={"max_value": 2000})
    assert _outcome("cnemc_absurd_values", qc, "range") > 0


def _table_files(tmp: Path, fmt: str, values: np.ndarray):
    """A generic_csv (long) or wide_csv file of 3 stations x 60 days, and its station table."""
    days = pd.date_range("2019-01-01", periods=60)
    ids = ["g1", "g2", "g3"]
    table = tmp / "stations.csv"
    pd.DataFrame({"id": ids, "lat": [36.2, 36.4, 36.6], "lon": [101.2, 101.4, 101.6]}).to_csv(
        table, index=False
    )
    data = tmp / "gauges.csv"
    if fmt == "wide_csv":
        pd.DataFrame(values, columns=ids).assign(date=days)[["date", *ids]].to_csv(
            data, index=False
        )
    else:
        long = pd.DataFrame(
            [(s, d, values[i, j]) for j, s in enumerate(ids) for i, d in enumerate(days)],
            columns=["station", "time", "value"],
        )
        long.to_csv(data, index=False)
    return data, table, days


@pytest.mark.parametrize("fmt", ["generic_csv", "wide_csv"])
def test_station_tables_in_wrong_units_fail_naming_stations(fmt, tmp_path):
    # gauge values in 0.1 mm (x10) against the mm range, with heavy rain: many outside 0..500
    rng = np.random.default_rng(3)
    values = 10 * rng.gamma(0.8, 60.0, (60, 3))  # a wet season (mean 48 mm) in 0.1 mm
    data, table, days = _table_files(tmp_path, fmt, values)
    grid = Grid(101.0, 36.0, 102.0, 37.0, 0.01)
    with pytest.raises(ValueError, match="max_range_fraction") as err:
        station_ingest("precip", fmt, data, table, grid, days[0], days[-1], 0)
    assert "g1" in str(err.value)
    OUTCOMES[f"{fmt}_wrong_units"] = f"error: {str(err.value)[:150]}"


def _showers(seed: int) -> np.ndarray:
    """60 days x 3 gauges of ordinary rain in mm: 70 % wet days, wet-day median ~4 mm."""
    rng = np.random.default_rng(seed)
    wet = rng.random((60, 3)) < 0.7
    return np.where(wet, rng.gamma(0.7, 9.0, (60, 3)), 0.0)


@pytest.mark.parametrize("fmt", ["generic_csv", "wide_csv"])
def test_station_tables_in_tenths_of_mm_fail_naming_stations(fmt, tmp_path):
    # ordinary rain in 0.1 mm: (almost) every value inside 0..500, so only the wet-day
    # median tells the unit
    values = 10 * _showers(4)
    assert (values > 500).mean() < 0.05  # the range check alone would let it through
    data, table, days = _table_files(tmp_path, fmt, values)
    grid = Grid(101.0, 36.0, 102.0, 37.0, 0.01)
    with pytest.raises(ValueError, match="max_wet_median") as err:
        station_ingest("precip", fmt, data, table, grid, days[0], days[-1], 0)
    assert "g1" in str(err.value) and "0.1 mm" in str(err.value)
    OUTCOMES[f"{fmt}_tenths_of_mm"] = f"error: {str(err.value)[:150]}"
    # the same rain in mm passes, its median recorded
    data, table, days = _table_files(tmp_path, fmt, values / 10)
    daily, _, qc = station_ingest("precip", fmt, data, table, grid, days[0], days[-1], 0)
    row = qc[(qc["check"] == "wet_median") & (qc["station"] == "*")]
    assert len(row) == 1 and "positive daily values" in row["detail"].iloc[0]
    assert len(daily) == 180


@pytest.mark.parametrize("fmt", ["generic_csv", "wide_csv"])
def test_station_tables_negative_value_is_counted(fmt, tmp_path):
    values = np.full((60, 3), 2.0) + np.arange(60)[:, None] % 7
    values[10, 1] = -40.0
    data, table, days = _table_files(tmp_path, fmt, values)
    grid = Grid(101.0, 36.0, 102.0, 37.0, 0.01)
    daily, _, qc = station_ingest("precip", fmt, data, table, grid, days[0], days[-1], 0)
    assert _outcome(f"{fmt}_negative_value", qc, "range") == 1


def test_outcome_table():
    """Print the case -> outcome table (``pytest -s -k outcome_table`` after the cases)."""
    for k in sorted(OUTCOMES):
        print(f"| {k} | {OUTCOMES[k]} |")
