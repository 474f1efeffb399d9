"""SHAP: LightGBM pred_contrib against the shap package; importance table and figures."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import shap

from gridfuse.explain import feature_group, mean_abs_shap, plot_bar, plot_beeswarm, tree_shap


@pytest.fixture(scope="module")
def booster_and_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    y = 3 * np.nan_to_num(X[:, 0]) - 2 * np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.1, 400)
    params = {"objective": "regression", "num_leaves": 15, "verbosity": -1, "seed": 0}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=40), X


def test_tree_shap_matches_shap_package(booster_and_data):
    booster, X = booster_and_data
    contrib = tree_shap(booster, X[:60])
    explainer = shap.TreeExplainer(booster)
    ref = explainer.shap_values(X[:60])
    np.testing.assert_allclose(contrib[:, :-1], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(contrib[:, -1], explainer.expected_value, rtol=1e-5)
    # additivity: contributions sum to the prediction
    np.testing.assert_allclose(contrib.sum(1), booster.predict(X[:60]), rtol=1e-5, atol=1e-6)


def test_mean_abs_table(booster_and_data):
    booster, X = booster_and_data
    cols = ["so2_column", "blh", "rid", "conv1_00", "t2m_m3", "doy"]
    imp = mean_abs_shap(tree_shap(booster, X), cols)
    assert imp["feature"].iloc[0] in ("so2_column", "blh")
    assert imp["share"].sum() == pytest.approx(1.0)
    assert dict(zip(imp.feature, imp.group)) == {
        "so2_column": "input",
        "blh": "input",
        "rid": "random_id",
        "conv1_00": "convolution",
        "t2m_m3": "spatial",
        "doy": "calendar",
    }
    assert feature_group("prev_pollutant") == "sequential"
    assert feature_group("population_up6") == "spatial"
    assert feature_group("road_density_m11") == "spatial"


def test_figures(tmp_path, booster_and_data):
    booster, X = booster_and_data
    cols = [f"f{i}" for i in range(6)]
    c = tree_shap(booster, X)
    plot_bar(mean_abs_shap(c, cols), tmp_path / "bar.png")
    plot_beeswarm(c, X, cols, tmp_path / "bee.png")
    for name in ("bar.png", "bee.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
