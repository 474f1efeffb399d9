"""IMERG half-hourly HDF5 (V06/V07) and daily NetCDF4 readers."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from gridfuse.daily import DayWindow
from gridfuse.sources import READERS
from gridfuse.sources.imerg import (
    hhr_name,
    imerg_daily_name,
    read_imerg_hhr_file,
    write_imerg_daily,
    write_imerg_hhr,
)

LAT_ASC = np.round(36.05 + 0.1 * np.arange(6), 2)  # 36.05 .. 36.55
LON = np.round(101.05 + 0.1 * np.arange(4), 2)
BBOX = (101.0, 36.0, 101.4, 36.6)


def _granule_by_hand(path, start, rate_lat_asc, version="V07B"):
    """A granule written with h5py directly, in the NASA layout: (time, lon, lat)."""
    epoch = "1980-01-06" if version.startswith("V07") else "1970-01-01"
    name = "precipitation" if version.startswith("V07") else "precipitationCal"
    with h5py.File(path, "w") as h:
        g = h.create_group("Grid")
        t = g.create_dataset(
            "time", data=np.array([(start - pd.Timestamp(epoch)) // pd.Timedelta("1s")], "i4")
        )
        t.attrs["units"] = np.bytes_(f"seconds since {epoch} 00:00:00 UTC")
        g.create_dataset("lat", data=LAT_ASC.astype("f4"))
        g.create_dataset("lon", data=LON.astype("f4"))
        data = np.where(np.isfinite(rate_lat_asc), rate_lat_asc, -9999.9).astype("f4")
        v = g.create_dataset(name, data=data.T[None], chunks=(1, 4, 6), compression="gzip")
        v.attrs["units"] = np.bytes_("mm/hr")
        v.attrs["_FillValue"] = np.float32(-9999.9)


@pytest.mark.parametrize("version", ["V06B", "V07B"])
def test_granule_by_hand(tmp_path, version):
    start = pd.Timestamp("2020-07-01 12:30")
    rate = np.arange(24, dtype="f4").reshape(6, 4)  # (lat ascending, lon)
    rate[0, 0] = np.nan
    path = tmp_path / hhr_name(start, version)
    _granule_by_hand(path, start, rate, version)
    r = read_imerg_hhr_file(path, BBOX)
    assert list(r.starts) == [start]
    np.testing.assert_allclose(r.lat, LAT_ASC[::-1])
    np.testing.assert_allclose(r.lon, LON)
    expected = rate[::-1] * 0.5  # lat descending, mm per half hour
    np.testing.assert_array_equal(np.isnan(r.data[0]), np.isnan(expected))
    np.testing.assert_allclose(r.data[0][np.isfinite(expected)], expected[np.isfinite(expected)])
    # crop: cells overlapping 36.2..36.4 are 36.25 and 36.35
    r = read_imerg_hhr_file(path, (101.0, 36.2, 101.4, 36.4))
    np.testing.assert_allclose(r.lat, [36.35, 36.25])


def test_daily_from_hand_written_granules(tmp_path):
    # one CMA day (12 UTC to 12 UTC) of 48 granules with rate k mm/hr, minus one granule
    starts = pd.date_range("2020-07-01 12:00", periods=48, freq="30min")
    for k, s in enumerate(starts):
        folder = tmp_path / f"{s:%Y}" / f"{s.day_of_year:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        _granule_by_hand(folder / hhr_name(s), s, np.full((6, 4), float(k), "f4"))
    days = pd.DatetimeIndex(["2020-07-02"])
    out = READERS["imerg_hhr"]([tmp_path], days, DayWindow(12), BBOX, threads=2)
    assert out.dims == ("time", "lat", "lon") and out.dtype == np.float32
    np.testing.assert_allclose(out.values, 0.5 * sum(range(48)))
    assert out.attrs["days_missing"] == 0
    next(tmp_path.rglob(hhr_name(starts[7]))).unlink()
    out = READERS["imerg_hhr"]([tmp_path], days, DayWindow(12), BBOX)
    assert np.isnan(out.values).all() and out.attrs["days_missing"] == 1


def test_writer_matches_reader(tmp_path):
    start = pd.Timestamp("2019-01-01 23:30")
    rate = np.random.default_rng(3).gamma(0.4, 2.0, (6, 4)).astype("f4")[::-1]  # lat desc
    for compress in (True, False):
        path = write_imerg_hhr(
            tmp_path / f"{compress}.HDF5", start, LAT_ASC[::-1], LON, rate, compress=compress
        )
        r = read_imerg_hhr_file(path, BBOX)
        np.testing.assert_allclose(r.data[0], rate * 0.5)
        assert list(r.starts) == [start]
        with h5py.File(path) as h:  # real layout: (time, lon, lat), GPS epoch for V07
            assert h["Grid/precipitation"].shape == (1, 4, 6)
            assert b"1980-01-06" in h["Grid/time"].attrs["units"]


def test_time_in_file_must_match_name(tmp_path):
    s = pd.Timestamp("2020-07-01 12:00")
    _granule_by_hand(tmp_path / hhr_name(s), s + pd.Timedelta("30min"), np.zeros((6, 4), "f4"))
    with pytest.raises(ValueError, match=hhr_name(s).replace(".", r"\.")):
        READERS["imerg_hhr"]([tmp_path], ["2020-07-02"], DayWindow(12), BBOX)


def test_corrupt_and_missing_files_named(tmp_path):
    s = pd.Timestamp("2020-07-01 12:00")
    bad = tmp_path / hhr_name(s)
    bad.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(OSError, match=bad.name.replace(".", r"\.")):
        read_imerg_hhr_file(bad, BBOX)
    with pytest.raises(OSError, match="nothere"):
        read_imerg_hhr_file(tmp_path / "nothere.HDF5", BBOX)
    with pytest.raises(FileNotFoundError, match="imerg_hhr"):
        READERS["imerg_hhr"]([tmp_path / "empty"], ["2020-07-02"], DayWindow(12), BBOX)


@pytest.mark.parametrize("name,var", [("V06B", "precipitationCal"), ("V07A", "precipitation")])
def test_real_cut_granules(realdata, name, var):
    path = (
        realdata
        / "imerg_hhr_cut_fixtures"
        / (f"3B-HHR.MS.MRG.3IMERG.20000601-S000000-E002959.0000.{name}.HDF5")
    )
    r = read_imerg_hhr_file(path, (-180.0, -90.0, -179.0, -89.0))
    # both epochs (1970 for V06, GPS 1980-01-06 for V07) decode to the name's start time
    assert list(r.starts) == [pd.Timestamp("2000-06-01 00:00")]
    assert r.data.shape == (1, 10, 10)
    np.testing.assert_allclose(r.lat, np.round(-89.05 - 0.1 * np.arange(10), 2), atol=1e-4)
    np.testing.assert_allclose(r.lon, np.round(-179.95 + 0.1 * np.arange(10), 2), atol=1e-4)
    with h5py.File(path) as h:
        raw = h[f"Grid/{var}"][0].T[::-1]  # independent: (lon, lat) -> (lat desc, lon)
    expected = np.where(raw < -9999, np.nan, raw * 0.5)
    np.testing.assert_array_equal(np.isnan(r.data[0]), np.isnan(expected))
    np.testing.assert_allclose(r.data[0][np.isfinite(expected)], expected[np.isfinite(expected)])
    if name == "V06B":
        assert np.isnan(r.data).all()  # the cut V06B corner is all fill
    else:
        assert np.isfinite(r.data).any()
    # the registry reader on the real file: one half hour of a UTC day is not a day
    out = READERS["imerg_hhr"]([path], ["2000-06-01"], DayWindow(0), (-180, -90, -179, -89))
    assert out.attrs["days_missing"] == 1 and out.shape == (1, 10, 10)


def test_imerg_daily(tmp_path):
    days = pd.date_range("2020-07-01", periods=3)
    for k, d in enumerate(days[:2]):
        write_imerg_daily(
            tmp_path / imerg_daily_name(d), d, LAT_ASC[::-1], LON, np.full((6, 4), k + 1.5, "f4")
        )
    out = READERS["imerg_daily"]([tmp_path], days, DayWindow(0), BBOX)
    np.testing.assert_allclose(out.values[:2, 0, 0], [1.5, 2.5])
    assert np.isnan(out.values[2]).all() and out.attrs["days_missing"] == 1
    with pytest.raises(ValueError, match="UTC-day"):
        READERS["imerg_daily"]([tmp_path], days, DayWindow(12), BBOX)
