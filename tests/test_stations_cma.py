"""CMA V3.0 daily TXT and CMADaaS hourly CSV: codes, writer/reader round trip, real records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridfuse.stations import cma
from gridfuse.stations.qc import QCLog


def test_decode_special_codes():
    codes = np.array([0, 5, 123, 32700, 32766, 30012, 31005, 32003, 32744, -3, 40000])
    mm, unknown = cma.decode_precip(codes)
    expect = [0.0, 0.5, 12.3, 0.0, np.nan, 1.2, 0.5, 0.3, np.nan, np.nan, np.nan]
    np.testing.assert_allclose(mm, expect, equal_nan=True)
    assert unknown.tolist() == [False] * 8 + [True, True, True]


def test_degrees_minutes_both_ways():
    np.testing.assert_allclose(
        cma.degmin_to_deg([3637, 10146, 5258]), [36 + 37 / 60, 101 + 46 / 60, 52 + 58 / 60]
    )
    assert cma.deg_to_degmin([36 + 37 / 60, 101.9999, -0.5]).tolist() == [3637, 10200, -30]


def _example():
    stations = pd.DataFrame(
        {
            "station": ["52866", "52818"],
            "lat": [36 + 37 / 60, 36 + 25 / 60],
            "lon": [101 + 46 / 60, 94 + 54 / 60],
            "elevation": [2295.2, np.nan],
        }
    )
    dates = pd.date_range("2019-12-29", "2020-01-02")
    vals = [0.0, 0.02, 1.23, np.nan, 88.8]
    values = pd.DataFrame(
        [(s, d, v * (1 + i)) for i, s in enumerate(stations.station) for d, v in zip(dates, vals)],
        columns=["station", "date", "value"],
    )
    return values, stations


def test_writer_layout(tmp_path):
    values, stations = _example()
    files = cma.write_cma_daily(values, stations, tmp_path)
    assert [f.name for f in files] == [
        "SURF_CLI_CHN_MUL_DAY-PRE-13011-201912.TXT",
        "SURF_CLI_CHN_MUL_DAY-PRE-13011-202001.TXT",
    ]
    rows = [line.split() for line in files[0].read_text().splitlines()]
    assert all(len(r) == 13 for r in rows)
    first = dict(zip(cma._COLUMNS, rows[0]))
    # sorted by station then date: 52818 first; elevation unknown -> 999999
    assert first["station"] == "52818" and first["lat"] == "3625" and first["lon"] == "9454"
    assert first["elev"] == "999999"
    by_day = {(r[0], r[6]): r for r in rows}
    assert by_day[("52866", "30")][7:10] == ["0", "32700", "32700"]  # trace
    assert by_day[("52866", "31")][7:13] == ["5", "7", "12", "0", "0", "0"]  # 1.23 mm
    assert by_day[("52866", "31")][3] == "22952"
    jan = [line.split() for line in files[1].read_text().splitlines()]
    missing = [r for r in jan if r[0] == "52866" and r[6] == "1"][0]
    assert missing[7:13] == ["32766", "32766", "32766", "8", "8", "8"]


def test_round_trip(tmp_path):
    values, stations = _example()
    cma.write_cma_daily(values, stations, tmp_path)
    wide, st = cma.read_cma_daily(tmp_path)
    got = wide.stack().rename("value").rename_axis(["date", "station"]).reset_index()
    exp = values.assign(value=np.where(values.value < 0.05, 0.0, np.round(values.value, 1)))
    merged = exp.merge(got, on=["station", "date"], how="left", suffixes=("", "_read"))
    np.testing.assert_allclose(merged["value_read"], merged["value"], equal_nan=True)
    st = st.set_index("station")
    assert st.loc["52866", "lat"] == pytest.approx(36 + 37 / 60)
    assert st.loc["52866", "elevation"] == pytest.approx(2295.2)
    assert np.isnan(st.loc["52818", "elevation"])


def test_period_selects_months_and_days(tmp_path):
    values, stations = _example()
    cma.write_cma_daily(values, stations, tmp_path)
    wide, _ = cma.read_cma_daily(tmp_path, start="2020-01-01", end="2020-01-31")
    assert list(wide.index) == list(pd.date_range("2020-01-01", "2020-01-02"))


def test_flags_halves_and_duplicates(tmp_path):
    lines = [
        "52866  3637 10146  22952 2020  7  1     3     4     7 0 0 0",
        "52866  3637 10146  22952 2020  7  2     3     4    99 0 0 2",  # flagged wrong
        "52866  3637 10146  22952 2020  7  3     3     4 32766 0 0 8",  # filled from halves
        "52866  3637 10146  22952 2020  7  3     1     1     2 0 0 0",  # repeated day
        "52866  3637 10146  22952 2020  7  4     0     0 32744 0 0 0",  # unknown code
        "52866  3637 10146 122952 2020  7  5 30002 31003 32005 0 0 0",  # estimated elevation
    ]
    (tmp_path / "SURF_CLI_CHN_MUL_DAY-PRE-13011-202007.TXT").write_text("\r\n".join(lines))
    log = QCLog()
    wide, st = cma.read_cma_daily(tmp_path, qc=log)
    np.testing.assert_allclose(
        wide["52866"].to_numpy(), [0.7, np.nan, 0.7, np.nan, 0.5], equal_nan=True
    )
    assert log.total("cma_qc_flag") == 1
    assert log.total("filled_from_halves") == 1  # only a missing total, not a wrong one
    assert log.total("duplicate") == 1
    assert log.total("unknown_code") == 1
    assert st["elevation"].iloc[0] == pytest.approx(2295.2)


@pytest.mark.parametrize(
    "content, match",
    [
        ("52866 3637 10146 22952 2020 7 1 3 4\n", "expected 13"),
        ("52866 3637 10146 22952 2020 7 1 3 4 x 0 0 0\n", "non-numeric"),
        ("52866 3637 10146 22952 2020 7 32 3 4 7 0 0 0\n", "invalid date"),
        ("", "empty"),
    ],
)
def test_corrupt_file_names_the_file(tmp_path, content, match):
    path = tmp_path / "SURF_CLI_CHN_MUL_DAY-PRE-13011-202007.TXT"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        cma.read_cma_daily(tmp_path)
    assert str(path) in str(err.value)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        cma.read_cma_daily(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        cma.read_cma_daily(tmp_path)


def test_real_v30_records(realdata, tmp_path):
    """Real 1951 V3.0 codes (tidymet) written as TXT rows, read back = the documented decoding."""
    raw = pd.read_csv(
        realdata / "cma_daily_tidymet/converted/mete840_raw_1951.csv",
        usecols=["site", "date", "long", "lat", "alt", "prcp20_20", "QC_prcp20_20"],
        parse_dates=["date"],
    )
    raw = raw[raw["date"].dt.month.isin([7, 10])]
    # the R table has NA where the TXT has 32766 / QC 8
    raw = raw.assign(
        prcp20_20=raw["prcp20_20"].fillna(cma.MISSING).astype("i8"),
        QC_prcp20_20=raw["QC_prcp20_20"].fillna(8).astype("i8"),
    )
    assert (raw["prcp20_20"] == cma.TRACE).any() and (raw["prcp20_20"] > 30000).any()
    assert (raw["prcp20_20"] == cma.MISSING).any()
    for (y, m), part in raw.groupby([raw.date.dt.year, raw.date.dt.month]):
        lines = [
            f"{r.site} {r.lat} {r.long} {r.alt} {r.date.year} {r.date.month} {r.date.day} "
            f"32766 32766 {r.prcp20_20} 8 8 {r.QC_prcp20_20}"
            for r in part.itertuples()
        ]
        (tmp_path / f"SURF_CLI_CHN_MUL_DAY-PRE-13011-{y}{m:02d}.TXT").write_text("\n".join(lines))
    wide, st = cma.read_cma_daily(tmp_path)
    # the README's verified decoding, applied independently
    x = raw["prcp20_20"]
    expect = x.where(x != 32700, 0).where(lambda s: s < 30000, lambda s: s % 1000) / 10.0
    expect = expect.where((x != cma.MISSING) & ~raw["QC_prcp20_20"].isin([2, 8, 9]))
    got = wide.stack(future_stack=True).rename_axis(["date", "station"]).rename("got").reset_index()
    m = raw.assign(expect=expect.to_numpy(), station=raw.site.astype(str)).merge(
        got, on=["station", "date"]
    )
    assert len(m) == len(raw)
    np.testing.assert_allclose(m["got"], m["expect"], equal_nan=True)
    yushu = st.set_index("station").loc["56029"]  # lat 3252, lon 9640, alt 137150 (estimated)
    assert yushu["lat"] == pytest.approx(32 + 52 / 60)
    assert yushu["lon"] == pytest.approx(96 + 40 / 60)
    assert yushu["elevation"] == pytest.approx(3715.0)


def test_hourly_csv(tmp_path):
    rows = [
        ("52866", 36.62, 101.77, 2295.2, 2020, 7, 1, h, v)
        for h, v in zip(range(24), [0.5] * 3 + [999990] + [0] * 19 + [999999])
    ]
    df = pd.DataFrame(rows, columns=cma._HOURLY_COLUMNS)
    df.to_csv(tmp_path / "hourly.csv", index=False)
    log = QCLog()
    wide, st = cma.read_cma_hourly(tmp_path / "hourly.csv", utc_offset=8, qc=log)
    assert wide.index[0] == pd.Timestamp("2020-06-30 16:00")  # Beijing 00 h -> UTC
    np.testing.assert_allclose(wide["52866"].to_numpy()[:5], [0.5, 0.5, 0.5, 0.0, 0.0])
    assert np.isnan(wide["52866"].iloc[-1])
    assert log.total("missing_code") == 1
    assert st["elevation"].iloc[0] == pytest.approx(2295.2)
    (tmp_path / "bad.csv").write_text("Station_Id_C,Lat\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv"):
        cma.read_cma_hourly(tmp_path / "bad.csv")
