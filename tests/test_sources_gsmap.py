"""GSMaP-Gauge v8 binaries (hourly, daily) and the hourly NetCDF variant."""

from __future__ import annotations

import gzip

import netCDF4
import numpy as np
import pandas as pd
import pytest

from gridfuse.daily import DayWindow
from gridfuse.sources import READERS
from gridfuse.sources.gsmap import (
    LAT,
    LON,
    daily_name,
    hourly_name,
    netcdf_name,
    read_gsmap_binary,
    write_gsmap_binary,
    write_gsmap_netcdf,
)

BBOX = (101.0, 36.0, 101.3, 36.2)  # 3 x 2 cells: lon 101.05..101.25, lat 36.15, 36.05


def _global_by_hand(path, value_of):
    """A full 1200 x 3600 little-endian float32 grid, north row first, gzipped in one member."""
    rows = np.arange(1200)[:, None]
    cols = np.arange(3600)[None, :]
    grid = value_of(rows, cols).astype("<f4")
    path.write_bytes(gzip.compress(grid.tobytes(), compresslevel=1))
    return grid


def test_axes():
    assert LAT[0] == 59.95 and LAT[-1] == -59.95 and LON[0] == 0.05 and LON[-1] == 359.95


def test_binary_by_hand(tmp_path):
    path = tmp_path / hourly_name(pd.Timestamp("2020-07-01 13:00"))
    # row j, column i -> j + i / 10000, with a missing (-99) cell
    grid = _global_by_hand(
        path, lambda r, c: np.where((r == 238) & (c == 1011), -99.0, r + c / 1e4)
    )
    lat, lon, vals = read_gsmap_binary(path, BBOX)
    np.testing.assert_allclose(lat, [36.15, 36.05])
    np.testing.assert_allclose(lon, [101.05, 101.15, 101.25])
    # 36.15 N is row (59.95 - 36.15) / 0.1 = 238; 101.05 E is column 1010
    assert vals[0, 1] != vals[0, 1]  # the -99 cell is NaN
    assert vals[0, 0] == pytest.approx(grid[238, 1010])
    assert vals[1, 2] == pytest.approx(grid[239, 1012])
    # a western-hemisphere bbox maps onto the 0..360 columns; the seam itself is refused
    lat, lon, vals = read_gsmap_binary(path, (-0.3, 59.8, -0.1, 60.0))
    np.testing.assert_allclose(lon, [-0.25, -0.15])
    assert vals[0, 0] == pytest.approx(grid[0, 3597]) and vals[0, 1] == pytest.approx(grid[0, 3598])
    with pytest.raises(ValueError, match="seam"):
        read_gsmap_binary(path, (-0.1, 59.8, 0.1, 60.0))


def test_writer_is_a_valid_global_gzip(tmp_path):
    lat = np.array([36.15, 36.05])
    lon = np.array([101.05, 101.15, 101.25])
    rate = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]], "f4")
    path = write_gsmap_binary(tmp_path / "g.dat.gz", lat, lon, rate)
    full = np.frombuffer(gzip.open(path).read(), "<f4").reshape(1200, 3600)  # whole stream
    assert full[238, 1010] == 1.0 and full[239, 1012] == 5.0 and full[238, 1012] == -99.0
    assert (full >= 0).sum() == 1200 * 3600 - 1
    _, _, vals = read_gsmap_binary(path, BBOX)
    np.testing.assert_array_equal(np.isnan(vals), np.isnan(rate))
    with pytest.raises(ValueError, match="consecutive GSMaP"):
        write_gsmap_binary(tmp_path / "h.dat.gz", lat + 0.03, lon, rate)


def test_hourly_daily_totals(tmp_path):
    starts = pd.date_range("2020-06-30 12:00", periods=24, freq="1h")
    for k, s in enumerate(starts):
        write_gsmap_binary(
            tmp_path / hourly_name(s),
            [36.15, 36.05],
            [101.05, 101.15, 101.25],
            np.full((2, 3), k, "f4"),
        )
    out = READERS["gsmap_hourly"]([tmp_path], ["2020-07-01"], DayWindow(12), BBOX, threads=2)
    np.testing.assert_allclose(out.values, sum(range(24)))
    # UTC day 2020-06-30 lacks its first 12 hours
    out = READERS["gsmap_hourly"]([tmp_path], ["2020-06-30"], DayWindow(0), BBOX)
    assert out.attrs["days_missing"] == 1 and np.isnan(out.values).all()


def test_daily_files_pick_the_window(tmp_path):
    d = pd.Timestamp("2020-07-01")
    _global_by_hand(
        tmp_path / daily_name(d, "00Z-23Z"), lambda r, c: np.full(r.shape[0:1] + c.shape[1:], 0.5)
    )
    _global_by_hand(
        tmp_path / daily_name(d, "p12Z-11Z"), lambda r, c: np.full(r.shape[0:1] + c.shape[1:], 0.25)
    )
    out = READERS["gsmap_daily"]([tmp_path], [d], DayWindow(0), BBOX)
    np.testing.assert_allclose(out.values, 12.0)  # mean rate x 24
    out = READERS["gsmap_daily"]([tmp_path], [d], DayWindow(12), BBOX)
    np.testing.assert_allclose(out.values, 6.0)
    with pytest.raises(ValueError, match="gsmap_hourly"):
        READERS["gsmap_daily"]([tmp_path], [d], DayWindow(16), BBOX)


def test_netcdf_variant(tmp_path):
    starts = pd.date_range("2020-07-01 00:00", periods=24, freq="1h")
    lat = np.round(36.35 - 0.1 * np.arange(5), 2)
    lon = np.round(100.95 + 0.1 * np.arange(6), 2)
    for k, s in enumerate(starts):
        write_gsmap_netcdf(tmp_path / netcdf_name(s), s, lat, lon, np.full((5, 6), 0.1 * k, "f4"))
    # one file written by hand with ascending latitude and the JAXA name
    s = starts[0]
    (tmp_path / netcdf_name(s)).unlink()
    with netCDF4.Dataset(tmp_path / f"GPMMRG_MAP_{s:%y%m%d%H%M}_H_L3S_MCH_05B.nc", "w") as nc:
        nc.createDimension("Time", 1)
        nc.createDimension("Latitude", 5)
        nc.createDimension("Longitude", 6)
        nc.createVariable("Latitude", "f4", ("Latitude",))[:] = lat[::-1]
        nc.createVariable("Longitude", "f4", ("Longitude",))[:] = lon
        v = nc.createVariable("hourlyPrecipRateGC", "f4", ("Time", "Latitude", "Longitude"))
        v[:] = np.full((1, 5, 6), 7.0, "f4")
    out = READERS["gsmap_netcdf"]([tmp_path], ["2020-07-01"], DayWindow(0), BBOX)
    np.testing.assert_allclose(out.values, 7.0 + 0.1 * sum(range(1, 24)), rtol=1e-5)
    np.testing.assert_allclose(out.lat, [36.15, 36.05])


def test_truncated_and_corrupt_files_named(tmp_path):
    path = tmp_path / hourly_name(pd.Timestamp("2020-07-01"))
    path.write_bytes(gzip.compress(np.zeros(1000, "<f4").tobytes()))
    with pytest.raises(ValueError, match="truncated.*|" + path.name):
        read_gsmap_binary(path, BBOX)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(OSError, match=path.name.replace(".", r"\.")):
        read_gsmap_binary(path, BBOX)
