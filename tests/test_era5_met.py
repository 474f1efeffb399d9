"""ERA5 meteorology -> daily predictors: RH, wind, day windows, both file flavours and the ZIP."""

from __future__ import annotations

import zipfile

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.sources import era5_met as em
from gridfuse.sources.era5 import write_era5


def test_relative_humidity_known_values():
    # T = 20 C, Td = 10 C: 100 exp(17.625*10/253.04 - 17.625*20/263.04) = 52.54 %
    assert em.relative_humidity(293.15, 283.15) == pytest.approx(52.54, abs=0.01)
    assert em.relative_humidity(280.0, 280.0) == pytest.approx(100.0)
    assert em.relative_humidity(280.0, 281.0) == 100.0  # supersaturation capped
    # cross-check with the Tetens/Bolton saturation vapour pressure ratio (within 1 %)
    t, td = 303.15, 288.15
    es = lambda c: 6.112 * np.exp(17.67 * c / (c + 243.5))  # noqa: E731
    assert em.relative_humidity(t, td) == pytest.approx(100 * es(15) / es(30), rel=0.01)


def test_wind_direction_is_from_direction():
    ws, wd = em.wind_speed_direction([1.0, 0.0, -3.0, 0.0], [0.0, -2.0, 0.0, 4.0])
    np.testing.assert_allclose(ws, [1, 2, 3, 4])
    # westerly (from 270), northerly (from 0), easterly (from 90), southerly (from 180)
    np.testing.assert_allclose(wd, [270, 0, 90, 180])


def _hourly(times, lat=(38.0, 37.75), lon=(112.0, 112.25, 112.5)):
    """Hand-made hourly fields: t2m ramps by hour index, constant d2m, tp 1 mm per hour."""
    n = len(times)
    shape = (n, len(lat), len(lon))
    k = np.arange(n, dtype="f8")[:, None, None] * np.ones(shape)
    data = {
        "t2m": 280.0 + k,
        "d2m": np.full(shape, 270.0),
        "u10": np.where(k % 2 == 0, 3.0, -1.0),  # mean u = 1, mean speed = 2
        "v10": np.zeros(shape),
        "sp": np.full(shape, 90000.0),
        "blh": 500.0 + 10 * k,
        "tp": np.full(shape, 0.001),
    }
    ds = xr.Dataset(
        {v: (("time", "lat", "lon"), a.astype("f4")) for v, a in data.items()},
        coords={"time": pd.DatetimeIndex(times), "lat": list(lat), "lon": list(lon)},
    )
    units = {"t2m": "K", "d2m": "K", "u10": "m s**-1", "v10": "m s**-1", "sp": "Pa", "blh": "m"}
    for v, u in units.items():
        ds[v].attrs["units"] = u
    ds["tp"].attrs["units"] = "m"
    return ds


def test_met_daily_window_means_and_sums():
    # Beijing calendar day (16 UTC start): 2018-09-01 = 2018-08-31 16:00 .. 2018-09-01 15:00
    times = pd.date_range("2018-08-31 00:00", "2018-09-02 23:00", freq="h")
    h = _hourly(times)
    d = em.met_daily(h, pd.DatetimeIndex(["2018-09-01", "2018-09-02"]), 16)
    # hour index of 2018-08-31 16:00 is 16: mean of 16..39 = 27.5
    assert float(d.t2m.isel(time=0, lat=0, lon=0)) == pytest.approx(280 + 27.5)
    assert float(d.t2m.isel(time=1, lat=1, lon=2)) == pytest.approx(280 + 51.5)
    assert float(d.blh.isel(time=0, lat=0, lon=0)) == pytest.approx(500 + 275)
    # tp: 24 hourly accumulations of 1 mm ending 17:00 .. 16:00 -> 24 mm
    np.testing.assert_allclose(d.tp, 24.0)
    np.testing.assert_allclose(d.u10, 1.0)
    np.testing.assert_allclose(d.ws, 2.0)
    np.testing.assert_allclose(d.wd, 270.0)
    rh_expected = np.mean(em.relative_humidity(280.0 + np.arange(16, 40), 270.0))
    assert float(d.rh.isel(time=0, lat=0, lon=0)) == pytest.approx(rh_expected, rel=1e-5)
    assert d.attrs["days_missing"] == 0
    assert d.t2m.attrs["units"] == "K" and d.tp.attrs["units"] == "mm day-1"
    # the last tp stamp of 2018-09-02 (16:00 on the 2nd) is present; 09-03 is not -> NaN
    d3 = em.met_daily(h, pd.DatetimeIndex(["2018-09-03"]), 16)
    assert np.isnan(d3.t2m).all() and d3.attrs["days_missing"] == 1


def test_met_daily_missing_variable():
    times = pd.date_range("2018-08-31", periods=24, freq="h")
    with pytest.raises(KeyError, match="blh"):
        em.met_daily(_hourly(times).drop_vars("blh"), times[:1], 0)


def _write_legacy(path, ds):
    """Old-CDS layout written directly: int16 packed, lon 0..360, hours since 1900."""
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("longitude", ds.sizes["lon"])
        nc.createDimension("latitude", ds.sizes["lat"])
        nc.createDimension("time", None)
        nc.createVariable("longitude", "f4", ("longitude",))[:] = ds.lon.values % 360
        nc.createVariable("latitude", "f4", ("latitude",))[:] = ds.lat.values
        t = nc.createVariable("time", "i4", ("time",))
        t.units, t.calendar = "hours since 1900-01-01 00:00:00.0", "gregorian"
        t[:] = (pd.DatetimeIndex(ds.time.values) - pd.Timestamp("1900-01-01")) // pd.Timedelta("1h")
        for name, da in ds.data_vars.items():
            v = nc.createVariable(name, "i2", ("time", "latitude", "longitude"), fill_value=-32767)
            lo, hi = float(da.min()), float(da.max())
            scale = max(hi - lo, 1e-3) / 60000.0
            v.scale_factor, v.add_offset = scale, (hi + lo) / 2
            v.units = da.attrs.get("units", "1")
            v[:] = da.values
    return path


@pytest.mark.parametrize("flavour", ["legacy", "new", "zip"])
def test_read_met_daily_from_files(tmp_path, flavour):
    times = pd.date_range("2018-12-31 00:00", "2019-01-02 23:00", freq="h")
    h = _hourly(times)
    paths = []
    # two files split at a month boundary, as CDS monthly downloads
    for part in (h.sel(time=slice(None, "2018-12-31")), h.sel(time=slice("2019-01-01", None))):
        stamp = pd.Timestamp(part.time.values[0]).strftime("%Y%m")
        if flavour == "zip":
            p = write_era5(tmp_path / f"era5_{stamp}.zip", part, flavour="new", zip_streams=True)
            assert zipfile.is_zipfile(p)
        elif flavour == "legacy":
            p = _write_legacy(tmp_path / f"era5_{stamp}.nc", part)
        else:
            p = write_era5(tmp_path / f"era5_{stamp}.nc", part, flavour=flavour)
        paths.append(p)
    days = pd.date_range("2019-01-01", "2019-01-02")
    d = em.read_met_daily(paths, days, 12, bbox=(111.9, 37.7, 112.3, 38.1), block_days=1)
    assert d.sizes == {"time": 2, "lat": 2, "lon": 2}
    # legacy int16 packing loses a little precision
    tol = 0.05 if flavour == "legacy" else 1e-4
    # 12 UTC start: 2019-01-01 = 2018-12-31 12:00 .. 2019-01-01 11:00 -> hours 12..35
    np.testing.assert_allclose(d.t2m.isel(time=0), 280 + 23.5, atol=tol)
    np.testing.assert_allclose(d.tp, 24.0, atol=tol * 24)
    assert list(d.lat.values) == [38.0, 37.75]
    assert d.attrs["days_missing"] == 0


def test_read_met_daily_error_names_file(tmp_path):
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"garbage")
    with pytest.raises(OSError, match="broken.nc"):
        em.read_met_daily([bad], pd.date_range("2019-01-01", periods=1), 0)


def test_files_for_year():
    names = [
        "era5_met_201711.nc",
        "era5_met_201712.nc",
        "era5_met_201805.zip",
        "era5_met_201901.zip",
        "era5_met_201902.zip",
        "2017/data_stream-oper_stepType-instant.nc",
        "era5_2016.nc",
    ]
    kept = [p.name for p in em.files_for_year(names, 2018)]
    assert kept == [
        "era5_met_201712.nc",
        "era5_met_201805.zip",
        "era5_met_201901.zip",
        "data_stream-oper_stepType-instant.nc",
    ]


def test_real_legacy_file_without_met_variables(realdata):
    """The real old-CDS fixture (swvl1/lsm only) is read, and the missing variables are named."""
    path = realdata / "era5_cds_netcdf_legacy_fixture" / "era5_example_downloaded_raw.nc"
    with pytest.raises(KeyError, match="blh.*era5_example_downloaded_raw.nc"):
        em.read_met_daily([path], pd.date_range("2010-01-01", periods=1), 0)
