"""ERA5 reader/writer: both CDS flavours, ZIP streams, expver merge, real legacy fixture."""

from __future__ import annotations

import zipfile

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.daily import DayWindow
from gridfuse.sources import READERS
from gridfuse.sources.era5 import open_era5, read_era5_daily, write_era5

LAT = np.array([37.0, 36.75])
LON = np.array([101.0, 101.25, 101.5])
TIMES = pd.date_range("2019-12-31 00:00", periods=72, freq="1h")


def _dataset(seed=0):
    rng = np.random.default_rng(seed)
    tp = rng.gamma(0.5, 0.001, (TIMES.size, 2, 3)).astype("f4")
    t2m = (270 + 10 * rng.random((TIMES.size, 2, 3))).astype("f4")
    return xr.Dataset(
        {
            "tp": (("time", "lat", "lon"), tp, {"units": "m"}),
            "t2m": (("time", "lat", "lon"), t2m, {"units": "K"}),
        },
        coords={"time": TIMES, "lat": LAT, "lon": LON},
    )


def _legacy_by_hand(path, tp, times, lon360, expver_split=None):
    """A legacy CDS file written with netCDF4 directly (int16 packing, lon 0..360)."""
    hours = ((times - pd.Timestamp("1900-01-01")) / pd.Timedelta("1h")).astype("i4")
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("longitude", lon360.size)
        nc.createDimension("latitude", LAT.size)
        if expver_split is not None:
            nc.createDimension("expver", 2)
        nc.createDimension("time", None)
        nc.createVariable("longitude", "f4", ("longitude",))[:] = lon360
        nc.createVariable("latitude", "f4", ("latitude",))[:] = LAT
        t = nc.createVariable("time", "i4", ("time",))
        t.units, t.calendar = "hours since 1900-01-01 00:00:00.0", "gregorian"
        t[:] = hours
        scale, offset = 1e-6, 0.03
        dims = ("time", "latitude", "longitude")
        vals = tp
        if expver_split is not None:
            nc.createVariable("expver", "i4", ("expver",))[:] = [1, 5]
            dims = ("time", "expver", "latitude", "longitude")
            vals = np.full((tp.shape[0], 2) + tp.shape[1:], np.nan)
            vals[:expver_split, 0] = tp[:expver_split]
            vals[expver_split:, 1] = tp[expver_split:]
        v = nc.createVariable("tp", "i2", dims, fill_value=np.int16(-32767))
        v.scale_factor, v.add_offset, v.units = scale, offset, "m"
        v.set_auto_maskandscale(False)
        v[:] = np.where(np.isfinite(vals), np.round((vals - offset) / scale), -32767).astype("i2")
    return scale


def test_legacy_written_by_hand(tmp_path):
    tp = _dataset().tp.values
    lon360 = LON.copy()
    step = _legacy_by_hand(tmp_path / "a.nc", tp, TIMES, lon360)
    ds = open_era5(tmp_path / "a.nc")
    assert ds.tp.dims == ("time", "lat", "lon") and ds.tp.dtype == np.float32
    np.testing.assert_allclose(ds.tp.values, tp, atol=step)
    assert (np.diff(ds.lat) < 0).all() and (np.diff(ds.lon) > 0).all()


def test_legacy_expver_merge_and_lon_wrap(tmp_path):
    tp = _dataset().tp.values
    # a domain straddling Greenwich in 0..360: 359.5, 0, 0.5 -> -0.5, 0, 0.5
    lon360 = np.array([0.0, 0.5, 359.5])
    step = _legacy_by_hand(tmp_path / "b.nc", tp, TIMES, lon360, expver_split=40)
    ds = open_era5(tmp_path / "b.nc", ["tp"])
    assert "expver" not in ds.dims and "expver" not in ds.variables
    np.testing.assert_allclose(ds.lon.values, [-0.5, 0.0, 0.5])
    np.testing.assert_allclose(ds.tp.values[:, :, 0], tp[:, :, 2], atol=step)
    assert np.isfinite(ds.tp.values).all()  # both halves (ERA5 and ERA5T) present


def test_new_cds_written_by_hand(tmp_path):
    ds0 = _dataset()
    path = tmp_path / "new.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("valid_time", TIMES.size)
        nc.createDimension("latitude", 2)
        nc.createDimension("longitude", 3)
        nc.createVariable("number", "i8", ())[...] = 0
        t = nc.createVariable("valid_time", "i8", ("valid_time",))
        t.units, t.calendar = "seconds since 1970-01-01", "proleptic_gregorian"
        t[:] = (TIMES - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")
        nc.createVariable("latitude", "f8", ("latitude",))[:] = LAT
        nc.createVariable("longitude", "f8", ("longitude",))[:] = LON
        e = nc.createVariable("expver", str, ("valid_time",))
        e[:] = np.array(["0001"] * TIMES.size, dtype=object)
        v = nc.createVariable("tp", "f4", ("valid_time", "latitude", "longitude"), zlib=True)
        v.units = "m"
        v[:] = ds0.tp.values
    ds = open_era5(path)
    np.testing.assert_array_equal(ds.tp.values, ds0.tp.values)
    assert list(ds.data_vars) == ["tp"] and pd.Timestamp(ds.time.values[0]) == TIMES[0]


@pytest.mark.parametrize("flavour,zipped", [("legacy", False), ("new", False), ("new", True)])
def test_writer_round_trip(tmp_path, flavour, zipped):
    ds0 = _dataset()
    path = tmp_path / ("x.zip" if zipped else "x.nc")
    write_era5(path, ds0, flavour=flavour, zip_streams=zipped)
    if zipped:
        names = zipfile.ZipFile(path).namelist()
        assert sorted(names) == [
            "data_stream-oper_stepType-accum.nc",
            "data_stream-oper_stepType-instant.nc",
        ]
    ds = open_era5(path, ["tp", "t2m"])
    tol = {"legacy": 1e-4, "new": 0}[flavour]
    np.testing.assert_allclose(ds.tp.values, ds0.tp.values, atol=tol * 0.1)
    np.testing.assert_allclose(ds.t2m.values, ds0.t2m.values, atol=tol * 100 + 1e-6)
    if flavour == "legacy":
        with netCDF4.Dataset(path) as nc:
            assert nc.data_model == "NETCDF3_64BIT_OFFSET" and nc["tp"].dtype == np.int16
            assert "time" in nc.variables and nc["time"].units.startswith("hours since 1900")
    elif not zipped:
        with netCDF4.Dataset(path) as nc:
            assert "valid_time" in nc.variables and "number" in nc.variables
            assert nc["expver"].dtype is str


def test_bbox_and_multiple_files(tmp_path):
    ds0 = _dataset()
    write_era5(tmp_path / "a.nc", ds0.isel(time=slice(0, 40)), flavour="new")
    write_era5(tmp_path / "b.nc", ds0.isel(time=slice(30, 72)), flavour="new")
    ds = open_era5([tmp_path / "a.nc", tmp_path / "b.nc"], ["tp"], bbox=(101.1, 36.0, 102, 36.9))
    assert ds.sizes == {"time": 72, "lat": 1, "lon": 2}
    np.testing.assert_array_equal(ds.tp.values, ds0.tp.values[:, 1:, 1:])


def test_daily_totals_cma_day(tmp_path):
    ds0 = _dataset()
    (tmp_path / "era5").mkdir()
    write_era5(tmp_path / "era5" / "tp.nc", ds0, flavour="new")
    days = pd.date_range("2020-01-01", periods=3)
    out = read_era5_daily([tmp_path / "era5" / "tp.nc"], days, DayWindow(12))
    t = TIMES
    sel = (t > "2019-12-31 12:00") & (t <= "2020-01-01 12:00")
    np.testing.assert_allclose(out.values[0], ds0.tp.values[sel].sum(0) * 1000, rtol=1e-5)
    assert np.isnan(out.values[2]).all() and out.attrs["days_missing"] == 1
    # the registry reader finds the file in its folder and keeps cells overlapping the bbox
    reg = READERS["era5"]([tmp_path / "era5"], days[:2], DayWindow(12), (101.3, 36.8, 101.6, 37.0))
    np.testing.assert_allclose(reg.lon.values, [101.25, 101.5])
    np.testing.assert_allclose(reg.values[0], out.values[0][:, 1:], rtol=1e-6)


def test_real_legacy_fixture(realdata):
    path = realdata / "era5_cds_netcdf_legacy_fixture" / "era5_example_downloaded_raw.nc"
    ds = open_era5(path)
    assert set(ds.data_vars) == {"swvl1", "lsm"}
    assert ds.sizes == {"time": 4, "lat": 37, "lon": 72}
    assert ds.lat.values[0] == 90 and ds.lat.values[-1] == -90
    assert ds.lon.values[0] == -180 and ds.lon.values[-1] == 175
    assert pd.Timestamp(ds.time.values[2]) == pd.Timestamp("2010-01-01 12:00")
    raw = xr.open_dataset(path)
    # lon 180 (index 36 in 0..360) becomes -180 (index 0)
    np.testing.assert_allclose(ds.lsm.values[:, :, 0], raw.lsm.values[:, :, 36], atol=1e-6)
    assert float(ds.lsm.min()) >= 0 and float(ds.lsm.max()) <= 1
    with pytest.raises(KeyError, match="era5_example_downloaded_raw.nc"):
        open_era5(path, ["tp"])


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        open_era5(tmp_path / "nope.nc")
    bad = tmp_path / "corrupt.nc"
    bad.write_bytes(b"CDF\x02 this is not a netcdf file")
    with pytest.raises(OSError, match="corrupt.nc"):
        open_era5(bad)
    z = tmp_path / "empty.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "no data")
    with pytest.raises(ValueError, match="empty.zip"):
        open_era5(z)
