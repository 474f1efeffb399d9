"""SHAP: LightGBM pred_contrib against exact Shapley values computed here by enumerating
every feature subset; importance table and figures."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pytest

from gridfuse.explain import feature_group, mean_abs_shap, plot_bar, plot_beeswarm, tree_shap


@pytest.fixture(scope="module")
def booster_and_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    y = 3 * np.nan_to_num(X[:, 0]) - 2 * np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.1, 400)
    params = {"objective": "regression", "num_leaves": 15, "verbosity": -1, "seed": 0}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=40), X


def _goes_left(node: dict, x: float) -> bool:
    """LightGBM's numerical decision of a split node for the value ``x``."""
    assert node["decision_type"] == "<=", "the reference handles numerical splits only"
    missing = node["missing_type"]
    if np.isnan(x) and missing != "NaN":
        x = 0.0  # LightGBM reads a NaN as 0 unless NaN is the split's missing type
    if (missing == "Zero" and abs(x) <= 1e-35) or (missing == "NaN" and np.isnan(x)):
        return bool(node["default_left"])
    return bool(x <= node["threshold"])


def _count(node: dict) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


def _conditional(node: dict, x: np.ndarray, in_subset: np.ndarray) -> np.ndarray:
    """E[tree(x) | x_S] of one tree for every subset S at once (path-dependent: a split on a
    feature outside S averages its children weighted by their training counts).

    ``in_subset[j]`` is a bool array over the 2**M subsets: feature j is in S."""
    if "split_index" not in node:
        return np.full(in_subset.shape[1], float(node["leaf_value"]))
    left, right = node["left_child"], node["right_child"]
    e_left, e_right = _conditional(left, x, in_subset), _conditional(right, x, in_subset)
    j = node["split_feature"]
    known = e_left if _goes_left(node, x[j]) else e_right
    n_left, n_right = _count(left), _count(right)
    unknown = (n_left * e_left + n_right * e_right) / (n_left + n_right)
    return np.where(in_subset[j], known, unknown)


def exact_shapley(booster: lgb.Booster, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shapley values ``(n, M)`` and the value of the empty set ``(n,)``, from the
    conditional expectations of every subset of the M features (2**M of them)."""
    trees = [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    m = X.shape[1]
    subsets = np.arange(2**m)
    in_subset = np.array([(subsets >> j) & 1 == 1 for j in range(m)])
    size = in_subset.sum(0)
    phi = np.zeros(X.shape, dtype=np.float64)
    base = np.zeros(len(X), dtype=np.float64)
    for r, x in enumerate(X.astype(np.float64)):
        v = sum(_conditional(t, x, in_subset) for t in trees)
        base[r] = v[0]
        for j in range(m):
            without = subsets[~in_subset[j]]  # S not containing j
            s = size[without]
            w = np.array([math.factorial(k) * math.factorial(m - k - 1) for k in s])
            phi[r, j] = np.sum(w * (v[without | (1 << j)] - v[without])) / math.factorial(m)
        # the full set's value is the model's raw prediction (checks the tree walk)
        assert v[-1] == pytest.approx(booster.predict(x[None], raw_score=True)[0], abs=1e-9)
    return phi, base


def test_tree_shap_matches_exact_shapley_values(booster_and_data):
    booster, X = booster_and_data
    rows = X[:60]
    assert np.isnan(rows).any()  # missing values take the splits' default directions
    contrib = tree_shap(booster, rows)
    phi, base = exact_shapley(booster, rows)
    np.testing.assert_allclose(contrib[:, :-1], phi, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(contrib[:, -1], base, rtol=1e-7, atol=1e-9)
    # the expected value is the same for every row: the training mean of the trees
    np.testing.assert_allclose(contrib[:, -1], contrib[0, -1], rtol=1e-12)
    # additivity: contributions sum to the prediction
    np.testing.assert_allclose(contrib.sum(1), booster.predict(rows), rtol=1e-7, atol=1e-9)


def test_exact_shapley_reference_on_a_hand_made_case():
    """The reference itself on a stump: f = 2 if x0 <= 0 else 10, with counts 3 and 1 (x1
    splits the targets less well, so the tree does not use it)."""
    X = np.array([[-1.0, 0.0], [-1.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
    y = np.array([2.0, 2.0, 2.0, 10.0])
    params = {
        "objective": "regression",
        "num_leaves": 2,
        "min_data_in_leaf": 1,
        "min_data_in_bin": 1,
        "learning_rate": 1.0,
        "boost_from_average": False,
        "lambda_l2": 0.0,
        "verbosity": -1,
    }
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=1)
    phi, base = exact_shapley(booster, X[[0, 3]])
    # the mean over the training counts is the base; x0 carries the rest, x1 nothing
    np.testing.assert_allclose(base, [(3 * 2 + 10) / 4] * 2, rtol=1e-12)
    np.testing.assert_allclose(phi[:, 0], [2 - 4.0, 10 - 4.0], rtol=1e-12)
    np.testing.assert_allclose(phi[:, 1], 0.0, atol=1e-15)
    np.testing.assert_allclose(tree_shap(booster, X[[0, 3]])[:, :-1], phi, rtol=1e-12)


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
