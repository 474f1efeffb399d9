"""Linear merges and tabular baselines on hand-made cases."""

import numpy as np
import pandas as pd
import pytest

from gridfuse.evaluate import baseline_grids, baseline_predictions, fit_baseline
from gridfuse.grid import Grid
from gridfuse.models.precip_baselines import IEVW, OORA, OWA, TabularRegressor, oora
from gridfuse.models.registry import MODELS, family, make, names, settings_keys
from gridfuse.samples import PatchSampler


def test_oora_drops_the_outlier():
    X = np.array([[1.0, 1.2, 0.8, 9.0], [2.0, 2.0, 2.0, 2.0], [0.0, 4.0, np.nan, 4.0]])
    out = oora(X)
    assert out[0] == pytest.approx(1.0)  # 9 is farthest from the mean 3.0
    assert out[1] == pytest.approx(2.0)
    # mean of the available (0, 4, 4) is 2.67; 0 is farthest -> (4 + 4) / 2
    assert out[2] == pytest.approx(4.0)
    assert np.isnan(oora(np.array([[np.nan, np.nan]])))[0]
    # two sources: plain mean; works on grids (..., k)
    assert oora(np.array([[1.0, 3.0]]))[0] == pytest.approx(2.0)
    assert OORA().fit(None, None).predict(np.ones((2, 3, 4))).shape == (2, 3)


def test_ievw_weights_are_inverse_error_variance():
    rng = np.random.default_rng(0)
    y = rng.gamma(1.0, 3.0, 5000)
    e = rng.normal(0, 1, (5000, 3)) * np.array([0.5, 1.0, 2.0])
    X = y[:, None] + e
    m = IEVW().fit(X, y)
    var = np.var(X - y[:, None], axis=0)
    np.testing.assert_allclose(m.weights_, (1 / var) / np.sum(1 / var))
    assert m.weights_.sum() == pytest.approx(1.0)
    # sigma 0.5, 1, 2 -> weights close to 16 : 4 : 1
    np.testing.assert_allclose(m.weights_, np.array([16, 4, 1]) / 21, atol=0.02)


def test_owa_weights_non_negative_sum_to_one_and_recover_a_mix():
    rng = np.random.default_rng(1)
    X = rng.gamma(1.0, 3.0, (400, 3))
    y = 0.7 * X[:, 0] + 0.3 * X[:, 2]
    m = OWA().fit(X, y)
    assert np.all(m.weights_ >= 0) and m.weights_.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(m.weights_, [0.7, 0.0, 0.3], atol=1e-4)
    # an anti-correlated source would get a negative unconstrained weight: clipped at 0
    y2 = X[:, 0] - 0.5 * X[:, 1]
    w = OWA().fit(X, y2).weights_
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0) and w[1] == pytest.approx(0.0, abs=1e-6)


def test_linear_fits_ignore_incomplete_rows_and_reject_empty():
    X = np.array([[1.0, np.nan], [2.0, 2.0], [3.0, 3.0]])
    y = np.array([1.0, 2.0, np.nan])
    assert IEVW().fit(X, y).weights_ == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="no complete"):
        OWA().fit(np.full((3, 2), np.nan), np.ones(3))


@pytest.mark.parametrize("kind", ["rf", "lightgbm", "mlp"])
def test_tabular_baselines_learn_a_nonlinear_relation(kind):
    rng = np.random.default_rng(2)
    X = rng.gamma(0.8, 4.0, (3000, 3))
    y = np.where(X[:, 2] > 4, 0.5 * X[:, 0], 1.5 * X[:, 1])
    X[::50, 0] = np.nan  # missing source values are handled
    m = TabularRegressor(kind, log_columns=[0, 1], seed=0, params={"n_estimators": 100}).fit(
        X[:2000], y[:2000]
    )
    p = m.predict(X[2000:])
    assert np.all(p >= 0) and np.all(np.isfinite(p))
    rmse = np.sqrt(np.mean((p - y[2000:]) ** 2))
    assert rmse < 0.6 * np.std(y[2000:])


def test_lightgbm_baseline_is_reproducible_with_threads():
    rng = np.random.default_rng(4)
    X = rng.gamma(0.8, 4.0, (2000, 3))
    y = X[:, 0] * 0.7 + rng.normal(0, 0.5, 2000)
    fits = [
        TabularRegressor("lightgbm", seed=1, threads=2, params={"n_estimators": 30}).fit(X, y)
        for _ in range(2)
    ]
    params = fits[0].model_.get_params()
    assert params["deterministic"] and params["force_row_wise"]
    np.testing.assert_array_equal(fits[0].predict(X), fits[1].predict(X))


def test_one_factory_for_the_models_of_both_kinds():
    """Every registered model is made with the same arguments and has fit/predict; unknown
    names and kinds are errors naming what is known."""
    with pytest.raises(ValueError, match="unknown precip model 'kriging'; known: .*'oora'"):
        make("precip", "kriging")
    with pytest.raises(ValueError, match="no models for product kind 'no2'"):
        names("no2")
    assert set(names("precip", "gauge-only")) == {"idw", "ok"}
    assert family("so2", "lstm") == "sample-frame"
    for kind in MODELS:
        for name in names(kind):
            inputs = {"n_sources": 2, "min_gauges": 3}
            if kind == "so2":
                from gridfuse.features import FeatureConfig
                from gridfuse.grid import Grid

                inputs = {"features": FeatureConfig(), "grid": Grid(100, 30, 100.1, 30.1, 0.01)}
            m = make(kind, name, seed=1, threads=1, params={}, **inputs)
            assert m.name == name and callable(m.fit) and callable(m.predict), (kind, name)
    # each precipitation model reads its own entry of the baselines' settings
    rf = make("precip", "rf", seed=3, params={"rf": {"n_estimators": 7}, "mlp": {}}, n_sources=2)
    assert rf.params == {"n_estimators": 7} and rf.seed == 3 and rf.log_columns == [0, 1]
    # the settings entries a job fitting some models needs, each once, in registry order
    assert settings_keys("precip", ["mlp", "oora", "rf"]) == ["rf", "mlp"]
    assert settings_keys("so2", ["lstm", "lightgbm_plain", "lightgbm"]) == ["lightgbm", "lstm"]


def test_baselines_use_training_stations_only_and_each_availability_set():
    rng = np.random.default_rng(3)
    n_st, n_days = 6, 40
    truth = rng.gamma(0.7, 3.0, (n_st, n_days))
    a = truth + rng.normal(0, 0.3, truth.shape)
    b = truth + rng.normal(0, 2.0, truth.shape)
    b[:, :20] = np.nan  # first year: source b absent
    centre = np.stack([a, b, np.full_like(a, 3000.0)], -1)
    y = truth.copy()
    y[4:] = 1000.0  # evaluation stations: never seen by the fits
    keys = np.array(["a"] * 20 + ["a-b"] * 20, dtype=object)
    out = baseline_predictions(
        centre, y, ["a", "b", "elevation"], keys, np.arange(4), ["ievw", "owa"]
    )
    assert np.all(out["ievw"] < 100) and np.all(out["owa"] < 100)
    # first set: the only source gets weight 1
    np.testing.assert_allclose(out["ievw"][:, :20], np.maximum(a[:, :20], 0), rtol=1e-6)
    m, cols = fit_baseline("ievw", centre, y, ["a", "b", "elevation"], np.arange(4), ["a", "b"])
    assert cols == ["a", "b"] and m.weights_[0] > m.weights_[1]
    m, cols = fit_baseline("rf", centre, y, ["a", "b", "elevation"], np.arange(4), ["a"])
    assert cols == ["a", "elevation"]


def test_baseline_grids_from_training_stations_and_gauges_only():
    """The OSSE grids of the linear merges and gauge-only interpolations: fitted on the
    training stations only (wild values at the evaluation stations change nothing), on the
    days asked for; a day the patches do not hold is an error, not another day's gauges."""
    rng = np.random.default_rng(5)
    grid = Grid(100.0, 30.0, 100.05, 30.04, 0.01)  # 4 x 5 cells
    n_st, times = 7, pd.date_range("2020-01-01", periods=6)
    truth = rng.gamma(0.8, 3.0, (n_st, len(times)))
    x = np.stack([truth + rng.normal(0, 0.2, truth.shape), 2.0 * truth], -1)[:, :, None, None]
    roles = np.array(["train"] * 5 + ["evaluation"] * 2)
    lat = 30.005 + 0.01 * rng.integers(0, 4, n_st)
    lon = 100.005 + 0.01 * (np.arange(n_st) % 5)

    days = times[[1, 3, 4]]
    stack = rng.gamma(0.8, 3.0, (len(days), *grid.shape, 2)).astype("f4")

    def grids(y, days=days):
        ps = PatchSampler(x, y, 1, times=times, channels=["a", "b"], roles=roles, lat=lat, lon=lon)
        return baseline_grids(
            ps, stack, ["a", "b"], days, grid, linear=["ievw"], gauge_only=["idw"]
        )

    out = grids(truth)
    wild = truth.copy()
    wild[5:] = 1000.0  # evaluation stations: never seen by the fits
    again = grids(wild)
    for name in ("ievw", "idw"):
        assert out[name].shape == (3, *grid.shape)
        np.testing.assert_array_equal(out[name], again[name])
    m, _ = fit_baseline("ievw", x[:, :, 0, 0], truth, ["a", "b"], np.arange(5), ["a", "b"])
    np.testing.assert_allclose(out["ievw"], m.predict(stack), rtol=1e-6)
    # the gauges' values of the asked days: a constant day interpolates to that constant
    flat = truth.copy()
    flat[:5, 3] = 2.5
    out = grids(flat)
    np.testing.assert_allclose(out["idw"][1], 2.5, rtol=1e-5)
    with pytest.raises(ValueError, match="1 day.s. not in the patches' times, first 2020-01-09"):
        grids(truth, times[[1, 3]].append(pd.DatetimeIndex(["2020-01-09"])))
