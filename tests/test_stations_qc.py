"""Station QC checks, roles, day windows, the generic CSV reader and the ingest entry point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridfuse.daily import DayWindow, day_of
from gridfuse.grid import Grid
from gridfuse.stations import (
    READERS,
    Observations,
    assign_roles,
    cma,
    generic,
    hourly_to_daily,
    ingest,
    product_day,
    qc,
    register_reader,
)

GRID = Grid(101.0, 36.0, 102.5, 37.2, 0.01)


def _wide(data: dict, start="2020-01-01", freq="D"):
    n = len(next(iter(data.values())))
    return pd.DataFrame(data, index=pd.date_range(start, periods=n, freq=freq), dtype=float)


# ---- QC checks on hand-made series --------------------------------------------------------


def test_stuck_mask_known_runs():
    x = np.array([1, 2, 2, 2, 0, 0, 0, 0, np.nan, 3, 3, 3, 3, 5], dtype=float)
    m = qc.stuck_mask(x[:, None], run=3)[:, 0]
    expect = [0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert m.astype(int).tolist() == expect
    m0 = qc.stuck_mask(x[:, None], run=4, ignore_zero=False)[:, 0]
    assert m0.astype(int).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0]
    assert not qc.stuck_mask(x[:, None], run=0).any()


def test_stuck_mask_runs_do_not_cross_columns():
    # column a ends with 7,7 and column b starts with 7,7: no run of 4 across the boundary
    v = np.array([[1, 7], [7, 7], [7, 2]], dtype=float)
    assert not qc.stuck_mask(v, run=3).any()
    assert qc.stuck_mask(v, run=2).sum() == 4


def test_stuck_mask_matches_loop():
    rng = np.random.default_rng(5)
    v = rng.integers(0, 3, size=(200, 7)).astype(float)
    v[rng.random(v.shape) < 0.05] = np.nan
    got = qc.stuck_mask(v, run=3)
    ref = np.zeros(v.shape, bool)
    for j in range(v.shape[1]):
        i = 0
        while i < v.shape[0]:
            k = i
            while k + 1 < v.shape[0] and v[k + 1, j] == v[i, j]:
                k += 1
            if k - i + 1 >= 3 and np.isfinite(v[i, j]) and v[i, j] != 0:
                ref[i : k + 1, j] = True
            i = k + 1
    np.testing.assert_array_equal(got, ref)


def test_range_and_non_positive_counts():
    w = _wide({"A": [-1, 0, 5, 600, np.nan], "B": [1, 2, 3, 4, 5]})
    log = qc.QCLog()
    out = qc.check_range(w, 0, 500, log)
    assert np.isnan(out["A"].iloc[[0, 3, 4]]).all() and out["A"].iloc[1] == 0
    out = qc.check_non_positive(out, log)
    assert out["A"].notna().sum() == 1
    t = log.table()
    assert t[(t.check == "range") & (t.station == "A")].n.item() == 2
    assert t[(t.check == "range") & (t.station == "*")].n.item() == 2
    assert t[(t.check == "non_positive") & (t.station == "A")].n.item() == 1
    assert "B" not in set(t.station)
    assert list(t.columns) == ["check", "station", "n", "detail"]


def test_coordinates_grid_and_duplicate_stations():
    st = pd.DataFrame(
        {
            "station": ["A", "B", "C", "C", "D"],
            "lat": [36.5, 40.0, np.nan, 36.6, 36.7],
            "lon": [101.5, 101.5, 101.0, 101.6, 101.7],
        }
    )
    w = _wide({"A": [1, 2], "B": [1, np.nan], "C": [3, 4], "E": [1, 1]})
    log = qc.QCLog()
    st = qc.check_duplicate_stations(st, log)
    assert log.total("duplicate_station") == 1
    st, w = qc.check_coordinates(st, w, log)
    assert log.total("no_coordinates") == 2  # C (first row lacks lat) and E (not in table)
    st, w = qc.check_inside_grid(st, w, GRID, log)
    assert log.total("outside_grid") == 1
    assert list(w.columns) == ["A"] and set(st.station) == {"A", "D"}
    t = log.table().set_index(["check", "station"])
    assert t.loc[("outside_grid", "B"), "n"] == 1  # one valid value removed with B
    assert t.loc[("no_coordinates", "E"), "n"] == 2


# ---- roles --------------------------------------------------------------------------------


def test_roles_deterministic_and_order_free():
    ids = [f"S{i:02d}" for i in range(30)]
    a = assign_roles(ids, count=10, seed=42)
    b = assign_roles(list(reversed(ids)), count=10, seed=42)
    pd.testing.assert_series_equal(a, b)
    assert (a == "evaluation").sum() == 10
    c = assign_roles(ids, count=10, seed=43)
    assert not a.equals(c)


def test_roles_explicit_ids_and_caps():
    log = qc.QCLog()
    r = assign_roles(["a", "b", "c"], ids=["b", "zz"], count=2, seed=0, qc=log)
    assert r.to_dict() == {"a": "train", "b": "evaluation", "c": "train"}
    assert log.total("evaluation") == 1
    assert (log.table().check == "evaluation_id_absent").sum() == 1
    r = assign_roles(["a", "b", "c"], count=5, seed=0)
    assert (r == "train").sum() == 1  # one station always left for training
    assert (assign_roles(["a", "b"], count=0) == "train").all()
    assert (assign_roles([], count=3) == "train").all()  # nothing to hold out


def test_the_cost_model_holds_out_the_stations_the_roles_do():
    """gridfuse.cost counts the training stations with the roles' own rule."""
    from gridfuse import cost
    from gridfuse.stations.roles import evaluation_count

    for n, kw in [(3, {"count": 5}), (40, {"count": 10}), (3, {"ids": ["s1", "s2"]}), (0, {})]:
        ids = [f"s{i}" for i in range(n)]
        held = (assign_roles(ids, seed=1, **kw) == "evaluation").sum()
        assert evaluation_count(n, **kw) == held
    cfg = {"kind": "precip", "grid": {"west": 0, "south": 0, "east": 1, "north": 1, "res": 0.1}}
    cfg |= {"period": {"start": "2020-01-01", "end": "2020-01-02"}}
    cfg |= {"stations": {"evaluation": {"ids": [], "count": 4}}}
    p = cost.Product(cfg)
    assert p.training_stations == p.stations - 4


# ---- day windows --------------------------------------------------------------------------


@pytest.mark.parametrize("h", [0, 12, 15, 16, 23])
def test_product_day_matches_gridfuse_daily(h):
    ends = pd.date_range("2019-12-30 00:00", "2020-01-02 00:00", freq="h")
    ours = product_day(ends, h)
    theirs = day_of(ends, DayWindow(h), convention="end", step="1h")
    assert (ours == theirs).all()


def test_product_day_known_cases():
    # CMA day (H=12): hour ending 12:00 UTC D belongs to D, ending 13:00 UTC to D+1
    ends = pd.DatetimeIndex(["2020-01-01 12:00", "2020-01-01 13:00"])
    assert list(product_day(ends, 12)) == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02")]
    # UTC day: hour ending 00:00 belongs to the previous day
    assert product_day(pd.DatetimeIndex(["2020-01-02 00:00"]), 0)[0] == pd.Timestamp("2020-01-01")


def test_hourly_to_daily_sum_mean_and_threshold():
    ends = pd.date_range("2020-01-01 13:00", periods=48, freq="h")  # 2 full CMA days
    v = np.ones((48, 2))
    v[:5, 1] = np.nan  # station b misses 5 hours of day 1
    w = pd.DataFrame(v, index=ends, columns=["a", "b"])
    s, n = hourly_to_daily(w, 12, "sum", 20)
    assert list(s.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
    assert s["a"].tolist() == [24.0, 24.0]
    assert np.isnan(s["b"].iloc[0]) and n["b"].tolist() == [19, 24]
    m, _ = hourly_to_daily(w * 3, 12, "mean", 19)
    assert m["b"].tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="sum"):
        hourly_to_daily(w, 12, "max", 20)


# ---- generic CSV --------------------------------------------------------------------------


def _generic(tmp_path, rows, table_rows):
    data = tmp_path / "obs.csv"
    pd.DataFrame(rows, columns=["station", "time", "value"]).to_csv(data, index=False)
    table = tmp_path / "stations.csv"
    pd.DataFrame(table_rows, columns=["id", "lat", "lon", "elevation"]).to_csv(table, index=False)
    return data, table


def test_generic_daily_ingest(tmp_path):
    dates = pd.date_range("2020-01-01", periods=15)
    rows = [("A", d.date(), 1.5) for d in dates] + [
        ("B", d.date(), float(i % 3)) for i, d in enumerate(dates)
    ]
    rows += [("A", dates[0].date(), 9.0)]  # duplicate
    rows += [("C", dates[0].date(), 2.0)]  # outside the grid
    data, table = _generic(
        tmp_path, rows, [("A", 36.5, 101.5, 2200), ("B", 36.6, 101.6, None), ("C", 30, 90, 10)]
    )
    daily, stations, qct = ingest(
        "precip", "generic_csv", data, table, GRID, "2020-01-01", "2020-01-15", 12,
        qc={"stuck_days": 10}, evaluation={"count": 1}, seed=4,
    )  # fmt: skip
    s = qct[qct.station == "*"].set_index("check")["n"]
    assert s["duplicate"] == 1 and s["outside_grid"] == 1
    assert s["stuck"] == 15  # A: 15 identical non-zero days; B varies
    assert set(daily.station) == {"B"} and (daily.n_valid == 1).all()
    assert stations.station.tolist() == ["B"] and np.isnan(stations.elevation.item())
    assert stations.role.item() == "train"  # the only station stays in training


def test_generic_hourly_with_offset(tmp_path):
    # Beijing-time hour ends 2020-01-01 21:00 .. 2020-01-02 20:00 = the CMA day 2020-01-02
    t = pd.date_range("2020-01-01 21:00", periods=24, freq="h")
    rows = [("A", x, 0.5 + 0.5 * (i % 2)) for i, x in enumerate(t)]  # not a stuck series
    data, table = _generic(tmp_path, rows, [("A", 36.5, 101.5, 2200)])
    daily, _, _ = ingest(
        "precip", "generic_csv", data, table, GRID, "2020-01-01", "2020-01-03", 12,
        evaluation={"count": 0}, options={"utc_offset": 8},
    )  # fmt: skip
    assert daily[["date", "value", "n_valid"]].values.tolist() == [
        [pd.Timestamp("2020-01-02"), 18.0, 24]
    ]


def test_generic_errors_name_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        generic.read_station_table(tmp_path / "nope.csv")
    bad = tmp_path / "obs.csv"
    bad.write_text("who,when\n1,2\n")
    with pytest.raises(ValueError, match="obs.csv"):
        generic.read_generic_csv(bad)
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        ingest("precip", "generic_csv", tmp_path / "missing_dir", None, GRID, "2020-01-01",
               "2020-01-02", 12)  # fmt: skip


# ---- ingest: CMA daily end to end, registry ------------------------------------------------


def test_ingest_cma_daily_round_trip(tmp_path):
    st = pd.DataFrame(
        {
            "station": ["52866", "52868", "52869", "52818"],
            "lat": [36.62, 36.3, 36.9, 36.4],
            "lon": [101.77, 101.2, 102.3, 94.9],  # 52818 (Golmud) lies outside the grid
            "elevation": [2295.2, 2500.0, 2600.0, 2807.6],
        }
    )
    dates = pd.date_range("2019-12-20", "2020-01-12")
    rng = np.random.default_rng(1)
    values = pd.DataFrame(
        [(s, d, rng.gamma(0.5, 4.0)) for s in st.station for d in dates],
        columns=["station", "date", "value"],
    )
    values.loc[5, "value"] = np.nan
    values.loc[6, "value"] = 900.0  # above max_value
    cma.write_cma_daily(values, st, tmp_path)
    daily, stations, qct = ingest(
        "precip", "cma_daily", tmp_path, None, GRID, "2019-12-22", "2020-01-10", 12,
        evaluation={"ids": ["52869"]},
    )  # fmt: skip
    assert daily["date"].min() == pd.Timestamp("2019-12-22")
    assert daily["date"].max() == pd.Timestamp("2020-01-10")
    assert set(stations.station) == {"52866", "52868", "52869"}
    assert stations.set_index("station").role.to_dict() == {
        "52866": "train",
        "52868": "train",
        "52869": "evaluation",
    }
    exp = values[values.date.between("2019-12-22", "2020-01-10") & (values.station != "52818")]
    exp = exp[(exp.value <= 500) | exp.value.isna()].dropna()
    m = exp.merge(daily, on=["station", "date"], how="outer", suffixes=("", "_got"))
    np.testing.assert_allclose(m["value_got"], np.where(m.value < 0.05, 0, m.value.round(1)))
    s = qct[qct.station == "*"].set_index("check")["n"]
    assert s["range"] == 1 and s["outside_grid"] == 1
    assert list(qct.columns) == ["check", "station", "n", "detail"]


def test_registry_accepts_new_formats(tmp_path):
    def fake(req):
        idx = pd.date_range(req.start, req.end)
        values = pd.DataFrame({"X": np.arange(len(idx), dtype=float) + 1}, index=idx)
        st = pd.DataFrame({"station": ["X"], "lat": [36.5], "lon": [101.5], "elevation": [1.0]})
        return Observations(values, st, hourly=False)

    register_reader("fake_test_format", fake)
    try:
        daily, stations, _ = ingest(
            "precip", "fake_test_format", tmp_path, None, GRID, "2020-01-01", "2020-01-03", 12,
            evaluation={"count": 0},
        )  # fmt: skip
        assert daily.value.tolist() == [1.0, 2.0, 3.0]
    finally:
        READERS.pop("fake_test_format")
    with pytest.raises(ValueError, match="unknown station format"):
        ingest("precip", "fake_test_format", tmp_path, None, GRID, "2020-01-01", "2020-01-03", 12)
