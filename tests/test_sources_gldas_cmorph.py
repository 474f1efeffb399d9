"""GLDAS-2.1 3-hourly and CMORPH 30-min NetCDF readers."""

from __future__ import annotations

import netCDF4
import numpy as np
import pandas as pd
import pytest

from gridfuse.daily import DayWindow
from gridfuse.sources import READERS
from gridfuse.sources.cmorph import cmorph_name, read_cmorph_file, write_cmorph
from gridfuse.sources.gldas import gldas_name, read_gldas_file, write_gldas

BBOX = (101.0, 36.0, 101.5, 36.5)


def _gldas_by_hand(path, stamp, value, bounds="past"):
    """A GLDAS file written with netCDF4 directly (lat ascending, -9999 fill)."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", 4)
        nc.createDimension("lon", 4)
        nc.createDimension("bnds", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.bounds = "minutes since 2000-01-01 00:00:00", "time_bnds"
        m = (stamp - pd.Timestamp("2000-01-01")) / pd.Timedelta("1min")
        t[:] = [m]
        b = nc.createVariable("time_bnds", "f8", ("time", "bnds"))
        b[:] = [[m - 180, m]] if bounds == "past" else [[m, m + 180]]
        nc.createVariable("lat", "f4", ("lat",))[:] = 35.875 + 0.25 * np.arange(4)
        nc.createVariable("lon", "f4", ("lon",))[:] = 100.875 + 0.25 * np.arange(4)
        v = nc.createVariable("Rainf_f_tavg", "f4", ("time", "lat", "lon"), fill_value=-9999.0)
        v.units = "kg m-2 s-1"
        data = np.full((1, 4, 4), value, "f4")
        data[0, 1, 1] = -9999.0  # water cell at 36.125 N, 101.125 E
        v.set_auto_maskandscale(False)
        v[:] = data


@pytest.mark.parametrize("bounds", ["past", "next"])
def test_gldas_daily_uses_time_bnds(tmp_path, bounds):
    # 16 files with rate k / 10800 (= k mm per 3 h); which 8 make a day depends on time_bnds
    stamps = pd.date_range("2020-07-01 00:00", periods=16, freq="3h")
    for k, s in enumerate(stamps):
        _gldas_by_hand(tmp_path / gldas_name(s), s, k / 10800.0, bounds)
    out = READERS["gldas"]([tmp_path], ["2020-07-01"], DayWindow(0), BBOX)
    # past: stamps 03..21 + 00 next day = k 1..8; next: stamps 00..21 = k 0..7
    want = sum(range(1, 9)) if bounds == "past" else sum(range(0, 8))
    np.testing.assert_allclose(out.lat, [36.375, 36.125])
    np.testing.assert_allclose(out.lon, [101.125, 101.375])
    np.testing.assert_allclose(out.values[0, 0], want, rtol=1e-5)
    np.testing.assert_allclose(out.values[0, 1, 1], want, rtol=1e-5)
    assert np.isnan(out.values[0, 1, 0])  # the water cell


def test_gldas_writer_and_errors(tmp_path):
    s = pd.Timestamp("2020-07-01 03:00")
    lat = 36.375 - 0.25 * np.arange(3)
    lon = 101.125 + 0.25 * np.arange(2)
    rate = np.array([[1, 2], [3, 4], [5, np.nan]], "f4") / 10800
    path = write_gldas(tmp_path / gldas_name(s), s, lat, lon, rate)
    r = read_gldas_file(path, (101.0, 35.75, 101.5, 36.5))
    assert list(r.starts) == [pd.Timestamp("2020-07-01 00:00")]
    np.testing.assert_allclose(r.data[0][:2], [[1, 2], [3, 4]], rtol=1e-5)
    assert np.isnan(r.data[0, 2, 1])
    with netCDF4.Dataset(path, "a") as nc:
        nc["Rainf_f_tavg"].units = "mm/day"
    with pytest.raises(ValueError, match=path.name.replace(".", r"\.")):
        read_gldas_file(path, BBOX)
    bad = tmp_path / gldas_name(s + pd.Timedelta("3h"))
    bad.write_text("garbage")
    with pytest.raises(OSError, match=bad.name.replace(".", r"\.")):
        read_gldas_file(bad, BBOX)


def _cmorph_by_hand(path, hour, values, descending=False):
    lat = -59.963614 + 0.072771377 * np.arange(1649)
    lon = 0.036378335 + 0.072756669 * np.arange(4948)
    rows = np.flatnonzero((lat > 35.9) & (lat < 36.6))
    cols = np.flatnonzero((lon > 100.9) & (lon < 101.6))
    la = lat[rows][::-1] if descending else lat[rows]
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 2)
        nc.createDimension("lat", la.size)
        nc.createDimension("lon", cols.size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "seconds since 1970-01-01"
        s = (hour - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")
        t[:] = [s, s + 1800]
        nc.createVariable("lat", "f4", ("lat",))[:] = la
        nc.createVariable("lon", "f4", ("lon",))[:] = lon[cols]
        v = nc.createVariable("cmorph", "f4", ("time", "lat", "lon"))
        v.units = "mm/hr"
        v[:] = np.stack([np.full((la.size, cols.size), x, "f4") for x in values])
    return la, lon[cols]


@pytest.mark.parametrize("descending", [False, True])
def test_cmorph_by_hand(tmp_path, descending):
    hours = pd.date_range("2020-06-30 12:00", periods=24, freq="1h")
    for k, h in enumerate(hours):
        _cmorph_by_hand(tmp_path / cmorph_name(h), h, (k, k + 0.5), descending)
    out = READERS["cmorph"]([tmp_path], ["2020-07-01"], DayWindow(12), BBOX)
    want = 0.5 * sum(k + k + 0.5 for k in range(24))
    np.testing.assert_allclose(out.values, want, rtol=1e-6)
    assert (np.diff(out.lat) < 0).all() and out.lat.min() > 35.96 and out.lat.max() < 36.54


def test_cmorph_writer_round_trip_and_errors(tmp_path):
    h = pd.Timestamp("2020-07-01 05:00")
    lat = np.array([36.2, 36.1])
    lon = np.array([101.1, 101.2, 101.3])
    rate = np.random.default_rng(0).random((2, 2, 3)).astype("f4")
    path = write_cmorph(tmp_path / cmorph_name(h), h, lat, lon, rate)
    r = read_cmorph_file(path, (101.05, 36.05, 101.35, 36.25))
    assert list(r.starts) == [h, h + pd.Timedelta("30min")]
    np.testing.assert_allclose(r.data, rate * 0.5)
    # a missing hour makes the day NaN and is counted
    out = READERS["cmorph"](
        [tmp_path], ["2020-07-01"], DayWindow(0), (101.05, 36.05, 101.35, 36.25)
    )
    assert out.attrs["days_missing"] == 1
    bad = tmp_path / cmorph_name(h + pd.Timedelta("1h"))
    bad.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(OSError, match=bad.name.replace(".", r"\.")):
        read_cmorph_file(bad, BBOX)
