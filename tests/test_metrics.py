"""Metrics: known answers, NaN handling, and cross-checks against xskillscore."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import xskillscore as xs

from gridfuse import metrics as M


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    obs = rng.gamma(0.6, 4.0, 400)
    obs[rng.random(400) < 0.4] = 0.0
    pred = np.clip(obs + rng.normal(0.3, 1.5, 400), 0, None)
    return obs, pred


def test_perfect_prediction():
    o = np.array([0.0, 0.05, 0.2, 3.0, 12.0, 0.0, 7.5])
    s = M.score(o, o.copy())
    assert s["rmse"] == 0 and s["mae"] == 0 and s["rb"] == 0
    assert s["cc"] == pytest.approx(1) and s["r2"] == pytest.approx(1)
    assert s["kge"] == pytest.approx(1)
    assert s["pod"] == 1 and s["far"] == 0 and s["csi"] == 1


def test_hand_computed_values():
    o = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 2.0, 6.0])
    # errors 1, 0, -1, 2
    assert M.rmse(o, p) == pytest.approx(np.sqrt(6 / 4))
    assert M.mae(o, p) == pytest.approx(1.0)
    assert M.rb(o, p) == pytest.approx(2 / 10 * 100)
    # SST = 5, SSE = 6
    assert M.r2(o, p) == pytest.approx(1 - 6 / 5)
    assert M.cc(o, p) == pytest.approx(np.corrcoef(o, p)[0, 1])
    r = np.corrcoef(o, p)[0, 1]
    beta = p.mean() / o.mean()
    gamma = (p.std() / p.mean()) / (o.std() / o.mean())
    assert M.kge(o, p) == pytest.approx(
        1 - np.sqrt((r - 1) ** 2 + (beta - 1) ** 2 + (gamma - 1) ** 2)
    )


def test_hand_counted_contingency():
    # threshold 1: events are values >= 1 (the boundary value 1.0 counts as an event)
    o = np.array([0.0, 1.0, 2.0, 5.0, 0.5, 0.0, 3.0, 0.2])
    p = np.array([0.0, 0.9, 1.0, 4.0, 1.5, 2.0, 0.0, 0.1])
    # pairs: CN, M, H, H, F, F, M, CN -> H=2, M=2, F=2, CN=2
    t = M.contingency(o, p, threshold=1.0)
    assert (t["hits"], t["misses"], t["false_alarms"], t["correct_negatives"]) == (2, 2, 2, 2)
    assert M.pod(o, p, threshold=1.0) == pytest.approx(0.5)
    assert M.far(o, p, threshold=1.0) == pytest.approx(0.5)
    assert M.csi(o, p, threshold=1.0) == pytest.approx(2 / 6)


def test_nan_pairs_dropped():
    o = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    p = np.array([1.5, 2.0, np.nan, 3.0, 5.5])
    keep = np.array([True, False, False, True, True])
    for m in M.METRICS:
        assert M.compute(m, o, p) == pytest.approx(M.compute(m, o[keep], p[keep]), nan_ok=True), m
    assert M.n_valid(o, p) == 3
    rows = M.score_rows("x", "site_cv", "all", o, p, metrics=["rmse"])
    assert rows[0]["n"] == 3


def test_degenerate_inputs_are_nan():
    assert np.isnan(M.rmse([np.nan], [1.0]))
    assert np.isnan(M.cc([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(M.r2([2.0, 2.0], [1.0, 3.0]))
    assert np.isnan(M.pod([0.0, 0.0], [1.0, 0.0]))  # no observed events
    with pytest.raises(ValueError, match="same shape"):
        M.rmse([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="unknown metric"):
        M.compute("nse2", [1.0], [1.0])


def test_against_xskillscore(pair):
    obs, pred = pair
    o = xr.DataArray(obs, dims="t")
    p = xr.DataArray(pred, dims="t")
    assert M.rmse(obs, pred) == pytest.approx(float(xs.rmse(o, p, dim="t")))
    assert M.mae(obs, pred) == pytest.approx(float(xs.mae(o, p, dim="t")))
    assert M.cc(obs, pred) == pytest.approx(float(xs.pearson_r(o, p, dim="t")))
    # xskillscore's r2 is r2_score(a=obs, b=forecast) = 1 - SSE / SST
    assert M.r2(obs, pred) == pytest.approx(float(xs.r2(o, p, dim="t")))
    thr = 0.1
    edges = np.array([-np.inf, thr, np.inf])  # [-inf, thr) = dry, [thr, inf] = wet
    c = xs.Contingency(o, p, edges, edges, dim="t")
    assert M.pod(obs, pred, thr) == pytest.approx(float(c.hit_rate()))
    assert M.far(obs, pred, thr) == pytest.approx(float(c.false_alarm_ratio()))
    assert M.csi(obs, pred, thr) == pytest.approx(float(c.threat_score()))


def test_axis_reduction_matches_loop(pair):
    obs, pred = pair
    o2 = obs.reshape(8, 50).copy()
    p2 = pred.reshape(8, 50).copy()
    o2[2, :7] = np.nan
    p2[5, 10:13] = np.nan
    for m in M.METRICS:
        got = M.compute(m, o2, p2, axis=1)
        want = [M.compute(m, o2[i], p2[i]) for i in range(8)]
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=m)


def test_xr_score_against_xskillscore(pair):
    obs, pred = pair
    o = xr.DataArray(obs.reshape(4, 10, 10), dims=("time", "lat", "lon"))
    p = xr.DataArray(pred.reshape(4, 10, 10), dims=("time", "lat", "lon"))
    got = M.xr_score("rmse", o, p, dim="time")
    assert got.dims == ("lat", "lon")
    xr.testing.assert_allclose(got, xs.rmse(o, p, dim="time").rename("rmse"))
    got = M.xr_score("cc", o, p, dim=["lat", "lon"])
    np.testing.assert_allclose(got.values, xs.pearson_r(o, p, dim=["lat", "lon"]).values)
    assert float(M.xr_score("mae", o, p)) == pytest.approx(M.mae(obs, pred))


def test_score_rows_and_frame(pair):
    obs, pred = pair
    rows = M.score_rows("lightgbm", "site_cv", "all", obs, pred, metrics=["r2", "rmse"])
    assert [r["metric"] for r in rows] == ["r2", "rmse"]
    assert set(rows[0]) == set(M.SCORE_COLUMNS)
    df = pd.DataFrame({"obs": obs, "pred": pred, "model": np.repeat(["a", "b"], 200)})
    out = M.score_frame(df, by=["model"], metrics=["rmse", "csi"])
    assert list(out.columns) == M.SCORE_COLUMNS
    assert (out["scheme"] == "all").all() and len(out) == 4
    a = out[(out.model == "a") & (out.metric == "rmse")]["value"].item()
    assert a == pytest.approx(M.rmse(obs[:200], pred[:200]))
