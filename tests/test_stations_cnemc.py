"""CNEMC china_sites files and station lists: writer, reader, defects, units, real files."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from gridfuse.grid import Grid
from gridfuse.stations import cnemc, ingest
from gridfuse.stations.qc import QCLog

CHINA = Grid(73.0, 18.0, 135.0, 54.0, 0.01)
REAL = "cnemc_china_sites_2019/original"


def _hourly(start="2018-08-31 01:00", hours=48, codes=("1001A", "1002A")):
    t = pd.date_range(start, periods=hours, freq="h")
    rows = []
    for k, c in enumerate(codes):
        for i, tt in enumerate(t):
            rows.append((c, tt, "SO2", 10.0 + k + (i % 5)))
            rows.append((c, tt, "PM2.5", 30.5 + i))
    return pd.DataFrame(rows, columns=["station", "time", "type", "value"])


def test_writer_layout_and_round_trip(tmp_path):
    h = _hourly()
    h.loc[3, "value"] = np.nan
    files = cnemc.write_china_sites(h, tmp_path)
    assert [f.name for f in files] == [
        "china_sites_20180831.csv",
        "china_sites_20180901.csv",
        "china_sites_20180902.csv",
    ]
    raw = files[1].read_bytes()
    assert raw.startswith(b"date,hour,type,1001A,1002A\r\n20180901,0,PM2.5,")
    assert not raw.endswith(b"\n")
    day = pd.read_csv(files[1])
    assert day.shape == (48, 5)  # 24 hours x 2 types, in the real type order
    assert day["type"].iloc[:2].tolist() == ["PM2.5", "SO2"]
    wide = cnemc.read_china_sites(tmp_path, pollutant="SO2")
    so2 = h[h.type == "SO2"].pivot(index="time", columns="station", values="value")
    got = wide.reindex(so2.index)
    np.testing.assert_allclose(got.to_numpy(), so2.to_numpy(), equal_nan=True)
    # hour 0 of the first file has no data: present but empty
    assert wide.loc[pd.Timestamp("2018-08-31 00:00")].isna().all()


def test_writer_rejects_bad_input(tmp_path):
    h = _hourly(hours=2)
    with pytest.raises(ValueError, match="repeated"):
        cnemc.write_china_sites(pd.concat([h, h.iloc[:1]]), tmp_path)
    with pytest.raises(ValueError, match="whole hours"):
        cnemc.write_china_sites(h.assign(time=h.time + pd.Timedelta(minutes=30)), tmp_path)
    with pytest.raises(ValueError, match="lacks columns"):
        cnemc.write_china_sites(h.drop(columns="type"), tmp_path)


def test_station_list_round_trip(tmp_path):
    st = pd.DataFrame(
        {
            "station": ["1001A", "1002A", "3019A"],
            "name": ["万寿西宫", "定陵", "西沙"],
            "city": ["北京", "北京", "三沙"],
            "lon": [116.366, 116.17, np.nan],
            "lat": [39.8673, 40.2865, np.nan],
        }
    )
    path = cnemc.write_station_list(st, tmp_path / "station_list.csv")
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "监测点编码,监测点名称,城市,经度,纬度,对照点"
    assert text.splitlines()[1] == "1001A,万寿西宫,北京,116.366,39.8673,N"
    back = cnemc.read_station_list(path)
    pd.testing.assert_frame_equal(back[st.columns.tolist()], st, check_dtype=False)


def test_station_list_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        cnemc.read_station_list(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv"):
        cnemc.read_station_list(bad)


def test_harmonize_298k():
    idx = pd.DatetimeIndex(["2018-08-31 23:00", "2018-09-01 00:00", "2018-09-01 01:00"])
    wide = pd.DataFrame({"A": [298.0, 298.0, np.nan]}, index=idx)
    log = QCLog()
    out = cnemc.harmonize_298k(wide, log)
    # hour 0 of the 09-01 file (hour ending 00:00) is already at 298 K
    np.testing.assert_allclose(out["A"].to_numpy(), [273.0, 298.0, np.nan])
    assert log.total("harmonize_298k") == 1
    assert wide["A"].iloc[0] == 298.0  # input untouched


def test_corrupt_header_names_the_file(tmp_path):
    path = tmp_path / "china_sites_20190101.csv"
    path.write_text("not,a,cnemc,file\n1,2,3,4\n")
    with pytest.raises(ValueError, match="china_sites_20190101.csv"):
        cnemc.read_china_sites(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing"):
        cnemc.read_china_sites(tmp_path / "nothing")


def _so2_ingest(tmp_path, hourly, stations, **kw):
    cnemc.write_china_sites(hourly, tmp_path)
    cnemc.write_station_list(stations, tmp_path / "station_list.csv")
    args = dict(
        kind="so2",
        fmt="cnemc",
        path=tmp_path,
        table=None,
        grid=Grid(112.0, 37.0, 113.0, 38.0, 0.01),
        start="2018-09-01",
        end="2018-09-02",
        utc_start_hour=16,
        qc={"max_value": 2000},
        evaluation={"count": 1},
        seed=1,
    )
    args.update(kw)
    return ingest(**args)


def test_beijing_calendar_day_and_completeness(tmp_path):
    # hour ends 2018-09-01 00:00 .. 2018-09-03 00:00 (Beijing): day D = hours 1..23 of file D
    # + hour 0 of file D+1; values equal the hour-end hour, so the day mean is known
    t = pd.date_range("2018-09-01 00:00", "2018-09-03 00:00", freq="h")
    vals = np.where(t.hour == 0, 24, t.hour).astype(float) + 1.0
    a = pd.DataFrame({"station": "A", "time": t, "type": "SO2", "value": vals})
    b = a.assign(station="B")
    b.loc[(b.time > "2018-09-02 00:00") & (b.time <= "2018-09-02 05:00"), "value"] = np.nan
    st = pd.DataFrame({"station": ["A", "B"], "lon": [112.5, 112.6], "lat": [37.5, 37.6]})
    daily, stations, qc = _so2_ingest(tmp_path, pd.concat([a, b]), st, qc={"stuck_hours": 0})
    d = daily.set_index(["station", "date"])
    assert d.loc[("A", pd.Timestamp("2018-09-01")), "value"] == pytest.approx(
        np.mean(np.arange(1, 25)) + 1
    )
    assert d.loc[("A", pd.Timestamp("2018-09-01")), "n_valid"] == 24
    assert d.loc[("B", pd.Timestamp("2018-09-01")), "n_valid"] == 24
    # B misses hours 1..5 of 09-02 -> 19 valid hours < 20: no value for that day
    assert ("B", pd.Timestamp("2018-09-02")) not in d.index
    inc = qc[(qc.check == "incomplete_day") & (qc.station == "B")]
    assert inc["n"].sum() == 1
    assert sorted(stations.role) == ["evaluation", "train"]
    assert daily["date"].dtype == "datetime64[ns]" and daily["n_valid"].dtype == "int64"


def test_so2_qc_counts_and_unit_change(tmp_path):
    t = pd.date_range("2018-08-31 01:00", "2018-09-02 00:00", freq="h")  # days 08-31, 09-01
    rng = np.random.default_rng(0)
    base = rng.uniform(5, 50, len(t)).round(1)
    rows = []
    for code in ("A", "B", "C", "FAR", "NOXY"):
        v = base.copy()
        if code == "B":
            v[:3] = [0.0, -1.0, 3000.0]  # two non-positive, one above max_value
        if code == "C":
            v[20:45] = 7.0  # 25 identical hours: stuck
        rows.append(pd.DataFrame({"station": code, "time": t, "type": "SO2", "value": v}))
    st = pd.DataFrame(
        {
            "station": ["A", "B", "C", "FAR", "NOXY"],
            "lon": [112.5, 112.6, 112.7, 120.0, np.nan],
            "lat": [37.5, 37.6, 37.7, 30.0, np.nan],
        }
    )
    daily, stations, qc = _so2_ingest(
        tmp_path, pd.concat(rows), st, start="2018-08-31", end="2018-09-01", evaluation={"count": 0}
    )
    summary = qc[qc.station == "*"].groupby("check")["n"].sum()
    assert summary["non_positive"] == 2
    assert summary["range"] == 1
    assert summary["stuck"] == 25
    assert summary["outside_grid"] == 1 and summary["no_coordinates"] == 1
    # hours ending before 09-01 00:00 at the 3 kept stations, less B's 2 non-positive and
    # C's 3 stuck hours removed before the conversion
    assert summary["harmonize_298k"] == 3 * 23 - 2 - 3
    assert set(stations.station) == {"A", "B", "C"}
    a = daily[daily.station == "A"].set_index("date")["value"]
    day1 = base[:24].copy()
    day1[:23] *= 273 / 298  # hour ending 09-01 00:00 is reported at 298 K already
    assert a[pd.Timestamp("2018-08-31")] == pytest.approx(day1.mean())
    assert a[pd.Timestamp("2018-09-01")] == pytest.approx(base[24:].mean())
    c = daily[daily.station == "C"].set_index("date")["n_valid"]
    assert c.to_dict() == {pd.Timestamp("2018-08-31"): 20}  # 09-01 keeps only 3 hours
    off = ingest(
        "so2",
        "cnemc",
        tmp_path,
        None,
        Grid(112.0, 37.0, 113.0, 38.0, 0.01),
        "2018-08-31",
        "2018-08-31",
        16,
        qc={"harmonize_298k": False, "max_value": 2000},
        evaluation={"count": 0},
    )[0]
    assert off.set_index("station").loc["A", "value"] == pytest.approx(base[:24].mean())


def test_defects_in_real_files(realdata, tmp_path):
    """Missing day, truncated day with a cut row, garbage row and a repeated station column."""
    src = realdata / REAL
    for day in ("20190101", "20190102", "20190104"):  # 20190103 is absent
        shutil.copy(src / f"china_sites_{day}.csv", tmp_path)
    cut = tmp_path / "china_sites_20190102.csv"
    lines = cut.read_bytes().split(b"\r\n")
    # keep 5 hours (75 rows + header) and half of the next row, as in a broken download
    cut.write_bytes(b"\r\n".join(lines[:76] + [lines[76][: len(lines[76]) // 2]]))
    dup = tmp_path / "china_sites_20190104.csv"
    lines = dup.read_bytes().split(b"\r\n")
    header = lines[0].split(b",")
    header[-1] = header[10]  # the last station column repeats an earlier code (cf. 3207A)
    garbage = b",".join([b"", b"", b"SO2"] + [b""] * (len(header) - 3))
    dup.write_bytes(b"\r\n".join([b",".join(header), *lines[1:], garbage]))

    log = QCLog()
    wide = cnemc.read_china_sites(tmp_path, start="2019-01-01", end="2019-01-04", qc=log)
    assert log.total("missing_file") == 1
    assert log.total("truncated_file") == 1  # only the cut file; the others have 24 hours
    assert log.total("partial_row") == 1
    assert log.total("garbage_row") == 1
    assert log.total("duplicated_column") == 1
    t = log.table()
    assert "china_sites_20190103.csv" in t[t.check == "missing_file"].detail.iloc[0]
    assert "china_sites_20190102.csv" in t[t.check == "truncated_file"].detail.iloc[0]
    hours = wide.index
    assert (hours.normalize() == pd.Timestamp("2019-01-02")).sum() == 5
    assert (hours.normalize() == pd.Timestamp("2019-01-03")).sum() == 0
    assert wide.columns.is_unique
    # the first of the repeated columns is kept: values equal the original code's column
    code = header[10].decode()
    orig = pd.read_csv(src / "china_sites_20190104.csv")
    so2 = orig[orig.type == "SO2"].set_index("hour")[code].to_numpy(dtype=float)
    np.testing.assert_allclose(wide.loc["2019-01-04", code].to_numpy(), so2, equal_nan=True)


def test_real_daily_means_match_derived_table(realdata):
    """File-day means (utc_start_hour 15 = hours 0..23 of file D) equal derived/so2_daily_mean."""
    root = realdata / "cnemc_china_sites_2019"
    daily, stations, qc = ingest(
        "so2",
        "cnemc",
        root / "original",
        root / "original/StationList-2020.01.01.csv",
        CHINA,
        "2019-01-01",
        "2019-01-02",
        15,
        qc={"stuck_hours": 0, "max_value": 10000, "min_value": 0},
        evaluation={"count": 10},
        seed=3,
    )
    ref = pd.read_csv(root / "derived/so2_daily_mean_2019.csv", index_col="date", parse_dates=True)
    hrs = pd.read_csv(root / "derived/so2_valid_hours_2019.csv", index_col="date", parse_dates=True)
    ref = ref.loc["2019-01-01":"2019-01-02"]
    hrs = hrs.loc["2019-01-01":"2019-01-02"]
    exp = (
        ref.where(hrs >= 20)
        .stack()
        .dropna()
        .rename("ref")
        .rename_axis(["date", "station"])
        .reset_index()
    )
    m = exp.merge(daily, on=["station", "date"], how="outer", indicator=True)
    # every derived value is ours, and ours has no value the derived table lacks, except
    # stations removed for missing coordinates (counted)
    no_coord = set(qc[(qc.check == "no_coordinates") & (qc.station != "*")].station)
    assert set(m.loc[m._merge == "left_only", "station"]) <= no_coord
    assert (m._merge != "right_only").all()
    both = m[m._merge == "both"]
    assert len(both) > 2500
    np.testing.assert_allclose(both["value"], both["ref"], atol=0.05 + 1e-9)
    h = hrs.stack().rename("h").rename_axis(["date", "station"]).reset_index()
    mh = daily.merge(h, on=["station", "date"])
    assert (mh["n_valid"] == mh["h"]).all()
    assert (stations.role == "evaluation").sum() == 10
    real_list = cnemc.read_station_list(root / "original/StationList-2020.01.01.csv")
    assert len(real_list) == 1640 or len(real_list) == 1641
    assert np.isnan(real_list.set_index("station").loc["3019A", "lon"])  # '-' coordinate


def test_real_calendar_day_by_hand(realdata):
    """Beijing calendar day (utc_start_hour 16) = hours 1..23 of file D + hour 0 of file D+1."""
    src = realdata / REAL
    daily, _, _ = ingest(
        "so2",
        "cnemc",
        src,
        src / "StationList-2020.01.01.csv",
        Grid(101.0, 36.0, 102.5, 37.2, 0.01),  # Xining
        "2019-01-01",
        "2019-01-01",
        16,
        qc={"stuck_hours": 0},
        evaluation={"count": 1},
    )
    d1 = pd.read_csv(src / "china_sites_20190101.csv")
    d2 = pd.read_csv(src / "china_sites_20190102.csv")
    grid = Grid(101.0, 36.0, 102.5, 37.2, 0.01)
    sites = cnemc.read_station_list(src / "StationList-2020.01.01.csv").dropna(subset=["lon"])
    sites = sites[grid.contains(sites.lon, sites.lat)].drop_duplicates("station")
    xs = [s for s in sites.station if s in d1.columns]
    assert {"1480A", "1481A", "1482A", "1483A", "3055A"} <= set(xs)  # Xining (README)
    h1 = d1[(d1.type == "SO2") & (d1.hour >= 1)][xs]
    h0 = d2[(d2.type == "SO2") & (d2.hour == 0)][xs]
    both = pd.concat([h1, h0]).where(lambda x: x > 0)
    expect = both.mean().where(both.count() >= 20).dropna()
    got = daily.set_index("station")["value"] / 1.0
    assert set(got.index) == set(expect.index)
    np.testing.assert_allclose(got[expect.index], expect, rtol=1e-12)


def test_missing_station_list_is_named(tmp_path):
    cnemc.write_china_sites(_hourly(hours=24), tmp_path)
    with pytest.raises(FileNotFoundError, match="station_list.csv"):
        ingest("so2", "cnemc", tmp_path, None, CHINA, "2018-08-31", "2018-08-31", 16)
