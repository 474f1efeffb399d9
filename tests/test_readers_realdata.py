"""Every reader on the genuine provider files in ``../shared/realdata`` (skipped when absent).

Each test reads a real file through the reader the ingest jobs use, checks its values
against an independent read (netCDF4 / h5py / gzip + numpy), and checks the QC records:
nothing masked in a good file, a clear error naming the file where the file is not what the
format needs.
"""

from __future__ import annotations

import gzip
import shutil

import h5py
import netCDF4
import numpy as np
import pandas as pd
import pytest

from gridfuse.daily import DayWindow
from gridfuse.grid import Grid
from gridfuse.sources import QualityError, SourceQC, ingest
from gridfuse.sources import tropomi as tr
from gridfuse.sources.era5 import read_era5_daily
from gridfuse.sources.era5_met import read_met_daily
from gridfuse.sources.gldas import read_gldas_file
from gridfuse.sources.gsmap import HOURLY_PATTERN, _hourly_file
from gridfuse.sources.imerg import read_imerg_hhr_file

GLDAS = "gldas21_noah025_real/cut_SAmerica/GLDAS_NOAH025_3H.A20150101.0000.021.nc4"
ERA5_NEW = "era5_cds_new_real/hourly_zip_members"
GSMAP = "gsmap_mvk_v7_hourly_real/gsmap_mvk.20240110.0000.v7.4112.0.dat.gz"
TROPOMI = "tropomi_l2_layout_real"


def _masked(qc: SourceQC) -> int:
    return sum(v[1] for per in qc.values.values() for v in per.values())


def test_gldas_real_file(realdata):
    path = realdata / GLDAS
    bbox = (-70.0, -20.0, -60.0, -10.0)
    r = read_gldas_file(path, bbox)
    # time_bnds [2014-12-31 21:00, 2015-01-01 00:00]: the file averages the past 3 hours
    assert list(r.starts) == [pd.Timestamp("2014-12-31 21:00")]
    with netCDF4.Dataset(path) as nc:
        lat, lon = nc["lat"][:], nc["lon"][:]
        v = nc["Rainf_f_tavg"]
        v.set_auto_maskandscale(False)
        rows = np.flatnonzero((lat > -20.125) & (lat < -9.875))
        cols = np.flatnonzero((lon > -70.125) & (lon < -59.875))
        raw = np.asarray(v[0][rows][:, cols], dtype="f8")[::-1]
    want = np.where(raw == -9999.0, np.nan, raw * 10800.0)
    np.testing.assert_array_equal(np.isnan(r.data[0]), np.isnan(want))
    np.testing.assert_allclose(r.data[0], want, rtol=1e-6)
    assert r.qc.files_read == 0 and _masked(r.qc) == 0 and not r.qc.units
    assert 0 < np.nanmax(r.data) < 40  # 0.0035 kg m-2 s-1 at most: < 38 mm per 3 h


def test_era5_new_cds_members_and_zip(realdata, tmp_path):
    folder = realdata / ERA5_NEW
    days = pd.date_range("2023-09-01", "2023-09-06")
    bbox = (77.0, 15.0, 82.0, 20.0)
    qc = SourceQC("era5")
    daily = read_era5_daily(
        [folder / "data_stream-oper_stepType-accum.nc"], days, DayWindow(0), bbox, qc=qc
    )
    with netCDF4.Dataset(folder / "data_stream-oper_stepType-accum.nc") as nc:
        tp = np.asarray(nc["tp"][:], dtype="f8")  # (168, 21, 21), lat decreasing
    # UTC day D = the hours ending 01..24 of D: indices 1..24 + 24 d
    want = np.stack([tp[1 + 24 * d : 25 + 24 * d].sum(0) * 1000 for d in range(6)])
    np.testing.assert_allclose(daily.values, want, rtol=1e-5, atol=1e-6)
    assert _masked(qc) == 0 and not qc.missing and daily.attrs["days_missing"] == 0
    # the same through the CDS ZIP (a copy, so the member labels name the ZIP)
    z = tmp_path / "era5_202309.zip"
    shutil.copy(realdata / "era5_cds_new_real" / "era5_hourly_repacked_by_us.zip", z)
    via_zip = read_era5_daily([z], days, DayWindow(0), bbox)
    np.testing.assert_array_equal(via_zip.values, daily.values)


def test_era5_met_real_zip_lacking_t2m_and_blh_is_counted_and_fails(realdata, tmp_path):
    # the real ZIP's instant stream holds d2m, u10, v10, sp but no t2m or blh
    z = tmp_path / "era5_met_202309.zip"
    shutil.copy(realdata / "era5_cds_new_real" / "era5_hourly_repacked_by_us.zip", z)
    days = pd.date_range("2023-09-01", "2023-09-06")
    qc = SourceQC("era5_met")
    ds = read_met_daily([z], days, 0, bbox=(77.0, 15.0, 82.0, 20.0), qc=qc)
    assert np.isnan(ds["t2m"].values).all() and np.isfinite(ds["sp"].values).all()
    assert any(m.startswith("t2m ") for m in qc.missing)
    assert any(m.startswith("blh ") for m in qc.missing)
    with pytest.raises(QualityError, match="max_lost_days"):
        ingest("era5_met", [tmp_path], days, 0, Grid(78.0, 16.0, 81.0, 19.0, 0.25), margin=0.5)


def test_era5_real_three_stream_sample(realdata):
    folder = realdata / "era5_cds_new_real" / "hourly_day01_12UTC_2014-2024"
    qc = SourceQC("era5")
    # one hour a month: a day is never complete, so every day is NaN and its hours missing
    daily = read_era5_daily(
        sorted(folder.glob("*.nc")), pd.date_range("2019-07-01", periods=1), DayWindow(0), qc=qc
    )
    assert daily.attrs["days_missing"] == 1 and qc.missing
    assert _masked(qc) == 0  # the 12 UTC values of tp are plausible


def test_gsmap_mvk_v7_real_binary(realdata, tmp_path):
    path = realdata / GSMAP
    assert HOURLY_PATTERN.match(path.name)  # the whole gsmap_<product> name family
    for name in (
        "gsmap_gauge.20190101.0000.v8.0000.0.dat.gz",
        "gsmap_nrt.20190101.0000.dat.gz",
        "gsmap_gauge_rnl.20190101.2300.v8.0000.1.dat.gz",
    ):
        assert HOURLY_PATTERN.match(name), name
    bbox = (100.0, 0.0, 110.0, 10.0)
    r = _hourly_file(path, bbox)
    raw = np.frombuffer(gzip.open(path).read(), "<f4").reshape(1200, 3600)
    rows = slice(500, 600)  # 9.95 .. 0.05 N
    cols = slice(1000, 1100)  # 100.05 .. 109.95 E
    want = np.where(raw[rows, cols] < 0, np.nan, raw[rows, cols])
    np.testing.assert_array_equal(r.data[0], want)
    assert _masked(r.qc) == 0 and np.nanmax(r.data) < 500
    assert list(r.starts) == [pd.Timestamp("2024-01-10 00:00")]


@pytest.mark.parametrize("name", ["V06B", "V07A"])
def test_imerg_real_cuts_qc(realdata, name):
    path = (
        realdata
        / "imerg_hhr_cut_fixtures"
        / f"3B-HHR.MS.MRG.3IMERG.20000601-S000000-E002959.0000.{name}.HDF5"
    )
    r = read_imerg_hhr_file(path, (-180.0, -90.0, -179.0, -89.0))
    var = "precipitationCal" if name == "V06B" else "precipitation"
    with h5py.File(path) as h:
        units = h[f"Grid/{var}"].attrs["Units"]
    assert units in (b"mm/hr", "mm/hr") and not r.qc.units  # mm/hr is the canonical unit
    assert _masked(r.qc) == 0
    # V06B's corner is all fill: recorded as a file without a valid value
    assert (var in r.qc.all_nan) == (name == "V06B")


def test_tropomi_real_layouts_fail_naming_what_is_missing(realdata):
    so2 = next((realdata / TROPOMI).glob("S5P_OFFL_L2__SO2____*.METADATA_ONLY.nc"))
    # a real SO2 file with its data variables removed: the name parses, the read names the gap
    info = tr.parse_l2_filename(so2.name.replace(".METADATA_ONLY", ""))
    assert info["orbit"] == 12367 and info["start"] == pd.Timestamp("2020-03-03 01:35:47")
    with pytest.raises(ValueError, match="PRODUCT/SUPPORT_DATA not found") as err:
        tr.read_l2(so2)
    assert so2.name in str(err.value)
    ch4 = next((realdata / TROPOMI).glob("S5P_OFFL_L2_CH4_*.nc4"))
    with pytest.raises(ValueError, match="not a TROPOMI L2 SO2 file name"):
        tr.parse_l2_filename(ch4.name)
    with pytest.raises(ValueError, match="sulfurdioxide_total_vertical_column") as err:
        tr.read_l2(ch4, cloud_max=None)
    assert ch4.name in str(err.value)
