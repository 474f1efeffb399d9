"""Compiled trees (model.predictor lleaves): equal to Booster.predict within 1e-6 relative,
byte-identical reruns, stale and foreign objects, a missing lleaves, and the OSSE grid
scoring of LightGBM baselines by compiled trees when their rows pay for the compile."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from _so2_fixtures import GRID, make_inputs

from gridfuse.features import FeatureConfig, attach_values, station_frame, station_pixels
from gridfuse.models.registry import make
from gridfuse.models.so2 import (
    DEFAULT_LIGHTGBM,
    ModelSettings,
    SO2Model,
    compile_trees,
    compiled,
    compiled_paths,
    load_compiled,
    osse_baseline_scores,
    predict_blocks,
    predict_year,
    predict_year_to_netcdf,
    with_coords,
)

SETTINGS = ModelSettings(
    lightgbm={**DEFAULT_LIGHTGBM, "num_leaves": 15, "min_data_in_leaf": 5, "learning_rate": 0.1},
    num_boost_round=60,
    early_stopping_rounds=60,
)
CFG = FeatureConfig(m1=8, m2=4, seed=3)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A fitted SO2 LightGBM saved and compiled; its inputs (NaN in the TROPOMI column)."""
    dyn, st, stations, daily = make_inputs(n_days=20, n_stations=12, nan_frac=0.2)
    px = station_pixels(stations, GRID)
    frame = with_coords(attach_values(station_frame(dyn, st, px, CFG), daily, px), GRID)
    model = make("so2", "lightgbm", params=SETTINGS, features=CFG, grid=GRID).fit(frame)
    d = tmp_path_factory.mktemp("model")
    model.save(d)
    record = compile_trees(d / "model.txt")
    return d, record, dyn.isel(time=slice(0, 6)), st, frame


def test_compiled_predictions_equal_lightgbm(stored, monkeypatch):
    d, record, dyn, st, frame = stored
    model = SO2Model.load(d)
    assert record["trees"] == model.booster.num_trees() > 10
    X = model.builder.transform(frame)
    assert np.isnan(X).any()  # missing values take the trees' default directions
    rng = np.random.default_rng(0)
    X = np.concatenate([X, np.where(rng.random(X.shape) < 0.3, np.nan, X)])  # more NaN
    ref = model.booster.predict(X, num_threads=1)
    trees = load_compiled(d / "model.txt")
    got = trees.predict(X, threads=2)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
    # float32 rows are converted in chunks: the same values as one float64 matrix
    assert X.dtype == np.float32 and len(X) > 3 * 7
    monkeypatch.setattr(compiled, "CHUNK_ROWS", 7)
    np.testing.assert_array_equal(trees.predict(X), got)
    np.testing.assert_array_equal(trees.predict(X.astype(np.float64), threads=3), got)
    # the gridded product: the lleaves engine against LightGBM's, cell by cell
    a = np.concatenate([b for _, b in predict_blocks(model, dyn, st, tile=8, time_block=4)])
    model.use_compiled(d)
    b = np.concatenate([b for _, b in predict_blocks(model, dyn, st, tile=8, time_block=4)])
    assert np.isfinite(a).all()
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=0)


def test_compile_and_predict_are_byte_deterministic(stored, tmp_path):
    d, _, dyn, st, _ = stored
    again = tmp_path / "model.lleaves.o"
    compile_trees(d / "model.txt", again)
    assert again.read_bytes() == compiled_paths(d / "model.txt")[0].read_bytes()
    files = []
    for run, threads in (("a", 1), ("b", 2)):
        model = SO2Model.load(d).use_compiled(d)
        path = predict_year_to_netcdf(
            model, dyn, st, tmp_path / run / "2018.nc", tile=8, time_block=4, threads=threads
        )
        files.append(path.read_bytes())
    assert files[0] == files[1]


def test_stale_object_is_refused(stored, tmp_path):
    d, *_ = stored
    for name in ("model.txt", "model.lleaves.o", "model.lleaves.json"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    with open(tmp_path / "model.txt", "a") as f:
        f.write("\n")  # another model file than the object was compiled from
    with pytest.raises(ValueError, match="compiled from another model.txt"):
        load_compiled(tmp_path / "model.txt")
    (tmp_path / "model.lleaves.json").unlink()
    with pytest.raises(FileNotFoundError, match="model.predictor: lightgbm"):
        load_compiled(tmp_path / "model.txt")


def test_object_of_another_cpu_is_compiled_again(stored, tmp_path, caplog):
    d, record, _, _, frame = stored
    for name in ("model.txt", "model.lleaves.o"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    (tmp_path / "model.lleaves.json").write_text(json.dumps({**record, "cpu": "other-cpu"}))
    with caplog.at_level(logging.WARNING, logger="gridfuse.models.so2.compiled"):
        trees = load_compiled(tmp_path / "model.txt")
    assert "compiled the" in caplog.text and "other-cpu" in caplog.text
    model = SO2Model.load(d)
    X = model.builder.transform(frame)
    np.testing.assert_allclose(trees.predict(X), model.booster.predict(X), rtol=1e-6, atol=0)


def test_missing_lleaves_names_the_key(stored, monkeypatch, tmp_path):
    d, *_ = stored
    monkeypatch.setitem(sys.modules, "lleaves", None)  # import lleaves raises ImportError
    with pytest.raises(RuntimeError, match="model.predictor: lightgbm"):
        compile_trees(d / "model.txt", tmp_path / "x.o")
    with pytest.raises(RuntimeError, match="model.predictor: lightgbm"):
        SO2Model.load(d).use_compiled(d)
    assert not (tmp_path / "x.o").exists()


def test_osse_grid_of_a_lightgbm_baseline_by_compiled_trees(stored, monkeypatch, caplog):
    """osse_baseline_scores compiles a fitted LightGBM's trees when model.predictor is
    lleaves and its grid rows reach compile_rows (0 here; by default the cost constants'
    break-even): the same predictions as Booster.predict within 1e-6 relative, the same
    osse_grid rows; below the break-even, or with predictor lightgbm, Booster.predict."""
    from gridfuse import cost

    _, _, dyn, st, frame = stored
    settings = dataclasses.replace(SETTINGS, num_boost_round=25, early_stopping_rounds=25)
    truth = 1.1 * predict_year(SO2Model.load(stored[0]), dyn, st, tile=8, time_block=4) + 1.0

    def factory():
        return make("so2", "lightgbm_plain", params=settings, features=CFG, grid=GRID)

    grids = []  # (engine, predictions) of every tile of every scored day

    def spy(self, X, threads=None):
        pred = predict_matrix(self, X, threads)
        grids[-1][1].append(pred)
        grids[-1][0].add("lleaves" if self._est.compiled is not None else "lightgbm")
        return pred

    predict_matrix = SO2Model.predict_matrix
    monkeypatch.setattr(SO2Model, "predict_matrix", spy)
    scores = {}
    runs = {
        "booster": {"predictor": "lightgbm", "compile_rows": 0},
        "compiled": {"predictor": "lleaves", "compile_rows": 0},
        "default": {"predictor": "lleaves"},  # 2 days x 480 cells: below the break-even
    }
    for run, kw in runs.items():
        grids.append((set(), []))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gridfuse.models.so2"):
            scores[run] = osse_baseline_scores(
                {"lightgbm_plain": factory}, frame, dyn, st, truth, every=3, tile=8, **kw
            )
        engine = "lleaves" if run == "compiled" else "lightgbm"
        assert grids[-1][0] == {engine}
        said = "compiled trees (lleaves)" if run == "compiled" else "Booster.predict"
        assert f"lightgbm_plain predicts with {said}: 960 rows" in caplog.text
        assert ("compiled " in caplog.text) == (run == "compiled")
    # the default break-even comes from the cost constants' kernel rates
    even = cost.lleaves_break_even_rows()
    assert f"960 rows vs the break-even {even:,.0f} (model.predictor lleaves)" in caplog.text
    assert 1e5 < even < 1e7
    booster, compiled_ = (np.concatenate(g[1]) for g in grids[:2])
    assert len(booster) == 960 and np.isfinite(booster).all()
    np.testing.assert_allclose(compiled_, booster, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(np.concatenate(grids[2][1]), booster)
    a, b = scores["booster"], scores["compiled"]
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    np.testing.assert_allclose(b["value"], a["value"], rtol=1e-6, atol=1e-9)
    pd.testing.assert_frame_equal(scores["default"], a)
