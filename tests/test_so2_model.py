"""SO2 model: fit/predict, storage, CV in shared folds, ablation, tiled prediction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from _so2_fixtures import GRID, make_inputs

from gridfuse.cv import BlockKFold, SiteKFold
from gridfuse.features import FeatureConfig, attach_values, station_frame, station_pixels
from gridfuse.io import read_geotiff
from gridfuse.models.registry import make
from gridfuse.models.so2 import (
    DEFAULT_LIGHTGBM,
    MODEL_NAMES,
    ModelSettings,
    SO2Model,
    ablation,
    cross_validate,
    osse_baseline_scores,
    predict_blocks,
    predict_year,
    scores_from_oof,
    with_coords,
)

SETTINGS = ModelSettings(
    lightgbm={**DEFAULT_LIGHTGBM, "num_leaves": 15, "min_data_in_leaf": 5, "learning_rate": 0.1},
    num_boost_round=150,
    early_stopping_rounds=15,
    rf={"n_estimators": 20, "min_samples_leaf": 2},
    lstm={"hidden": 8, "layers": 1, "epochs": 2, "seq_len": 3},
)
CFG = FeatureConfig(m1=16, m2=4, seed=2)


@pytest.fixture(scope="module")
def data():
    dyn, st, stations, daily = make_inputs(n_days=30, n_stations=12)
    px = station_pixels(stations, GRID)
    frame = with_coords(attach_values(station_frame(dyn, st, px, CFG), daily, px), GRID)
    return dyn, st, frame


@pytest.fixture(scope="module")
def fitted(data):
    return make("so2", "lightgbm", params=SETTINGS, features=CFG, grid=GRID).fit(data[2])


def test_fit_learns_signal(data, fitted):
    frame = data[2]
    obs = frame["value"].to_numpy()
    ok = np.isfinite(obs)
    pred = fitted.predict(frame[ok])
    assert np.corrcoef(obs[ok], pred)[0, 1] > 0.8
    assert (pred >= 0).all()


def test_save_load_identical(tmp_path, data, fitted):
    frame = data[2]
    fitted.save(tmp_path / "m")
    again = SO2Model.load(tmp_path / "m")
    assert again.columns == fitted.columns
    # the stored random IDs and convolution state are the ones used at prediction
    np.testing.assert_array_equal(again.builder.rid.perm, fitted.builder.rid.perm)
    np.testing.assert_array_equal(again.builder.transform(frame), fitted.builder.transform(frame))
    np.testing.assert_allclose(again.predict(frame), fitted.predict(frame), rtol=1e-6)


def test_tiled_prediction_equals_untiled(data, fitted):
    dyn, st, _ = data
    dyn = dyn.isel(time=slice(0, 5))
    whole = np.concatenate(
        [b for _, b in predict_blocks(fitted, dyn, st, tile=max(GRID.shape), time_block=5)]
    )
    tiled = np.concatenate([b for _, b in predict_blocks(fitted, dyn, st, tile=7, time_block=2)])
    assert whole.shape == (5, *GRID.shape)
    np.testing.assert_array_equal(tiled, whole)


def test_prediction_at_stations_equals_station_frame(data, fitted):
    dyn, st, frame = data
    grid_pred = next(predict_blocks(fitted, dyn, st, tile=9, time_block=3))[1]
    f0 = frame[frame["date"] == frame["date"].min()]
    np.testing.assert_allclose(grid_pred[0, f0["row"], f0["col"]], fitted.predict(f0), rtol=1e-6)


@pytest.mark.parametrize("name", ["lightgbm", "lightgbm_plain", "rf_ps"])
def test_grid_prediction_equals_station_prediction_every_day(data, fitted, name):
    # the gridded product at a station's pixel is the model's prediction for that station-day
    dyn, st, frame = data
    model = (
        fitted
        if name == "lightgbm"
        else make("so2", name, params=SETTINGS, features=CFG, grid=GRID).fit(frame)
    )
    days = pd.DatetimeIndex(dyn["time"].values)
    grid = np.concatenate([b for _, b in predict_blocks(model, dyn, st, tile=8, time_block=7)])
    t = days.get_indexer(pd.DatetimeIndex(frame["date"]))
    assert (t >= 0).all() and len(np.unique(t)) == len(days)
    np.testing.assert_allclose(
        grid[t, frame["row"], frame["col"]], model.predict(frame), rtol=1e-6, atol=1e-6
    )


def test_predict_year_geotiffs(tmp_path, data, fitted):
    dyn, st, _ = data
    dyn = dyn.isel(time=slice(0, 3))
    da = predict_year(fitted, dyn, st, tile=8, time_block=2, geotiff_dir=tmp_path, gzip=False)
    assert da.shape == (3, *GRID.shape) and da.name == "so2"
    files = sorted(p.name for p in tmp_path.glob("so2_*.tif"))
    assert files == [f"so2_{d:%Y%m%d}.tif" for d in pd.DatetimeIndex(dyn.time.values)]
    back = read_geotiff(tmp_path / files[1])
    np.testing.assert_allclose(np.asarray(back.values).squeeze(), da.values[1], rtol=1e-6)


def test_cross_validate_shared_folds(data):
    frame = data[2]
    models = {
        n: (lambda n=n: make("so2", n, params=SETTINGS, features=CFG, grid=GRID))
        for n in MODEL_NAMES
    }
    splitters = {"site_cv": SiteKFold(3, seed=0), "block_cv": BlockKFold(0.1, 2, seed=0)}
    oof = cross_validate(frame, models, splitters, history=frame)
    n_obs = int(frame["value"].notna().sum())
    for (_m, _s), g in oof.groupby(["model", "scheme"]):
        assert len(g) == n_obs  # every observed row predicted once per model and scheme
    # every model saw the same folds
    key = oof[oof.scheme == "site_cv"].set_index(["model", "station", "date"])["fold"]
    folds = key.unstack("model")
    assert (folds.nunique(axis=1) == 1).all()
    # a station is never in two site_cv folds
    assert (oof[oof.scheme == "site_cv"].groupby("station")["fold"].nunique() == 1).all()
    sc = scores_from_oof(oof)
    assert set(sc["model"]) == set(MODEL_NAMES)
    r2 = sc[(sc.metric == "r2") & (sc.model == "lightgbm")].set_index("scheme")["value"]
    assert r2["site_cv"] > 0.5


def test_ablation_variants(data):
    frame = data[2]
    splitters = {"site_cv": SiteKFold(3, seed=0)}
    ab = ablation(frame, CFG, GRID, SETTINGS, splitters, metrics=("r2", "rmse"))
    assert set(ab["variant"]) == {"full", "no_random_id", "no_spatial", "no_convolution"}
    full = ab[ab.variant == "full"]
    assert (full["delta"] == 0).all()
    row = ab[(ab.variant == "no_spatial") & (ab.metric == "r2")]
    ref = full[full.metric == "r2"]["value"].item()
    assert row["delta"].item() == pytest.approx(row["value"].item() - ref)


def test_ablation_adds_switched_off_techniques(data):
    # a technique off in the configured model is measured by adding it (with_<t>)
    dyn, st, frame = data
    cfg = dataclasses.replace(CFG, convolution=False, random_id=False)
    # in an OSSE every variant is also gridded and scored against the truth
    dyn = dyn.isel(time=slice(0, 6))
    truth = predict_year(SO2Model("t", "lightgbm", cfg, GRID, SETTINGS).fit(frame), dyn, st)
    osse = {"dynamic": dyn, "static": st, "truth": truth, "every": 3}
    splitters = {"site_cv": SiteKFold(3, seed=0)}
    ab = ablation(frame, cfg, GRID, SETTINGS, splitters, metrics=("r2",), osse=osse)
    assert set(ab["variant"]) == {"full", "no_spatial", "with_convolution", "with_random_id"}
    og = ab[ab.scheme == "osse_grid"].set_index("variant")
    assert len(og) == 4 and og.loc["full", "value"] == pytest.approx(1.0)
    assert og.loc["full", "delta"] == 0 and (og.drop("full")["delta"] < 0).all()
    ab = ab[ab.scheme == "site_cv"]
    assert ab.set_index("variant").loc["with_convolution", "removed"] == "convolution"
    with_conv = ab.set_index("variant").loc["with_convolution", "value"]
    model = SO2Model("c", "lightgbm", dataclasses.replace(cfg, convolution=True), GRID, SETTINGS)
    oof = cross_validate(frame, {"c": lambda: model}, {"site_cv": SiteKFold(3, seed=0)})
    assert with_conv == pytest.approx(scores_from_oof(oof, metrics=("r2",))["value"].item())


def test_model_settings_from_config():
    s = ModelSettings.from_config(
        {"lightgbm": {"num_leaves": 31, "num_boost_round": 10}, "rf_ps": {"n_estimators": 7}},
        seed=3,
        threads=2,
    )
    assert s.lightgbm["num_leaves"] == 31 and s.num_boost_round == 10
    assert s.rf["n_estimators"] == 7 and s.seed == 3
    with pytest.raises(ValueError, match="unknown so2 model 'xgb'"):
        make("so2", "xgb", params=s, features=CFG, grid=GRID)


@pytest.mark.slow
def test_so2_workflow_on_test_config(test_workflow):
    """synthesize -> ingest -> downscale -> so2 samples/train/CV/ablation/SHAP/predict on the
    tiny test_so2 product of configs/test.yaml (the shared test-config run)."""
    from gridfuse.io import read_netcdf

    out = "results/test_so2"
    assert (test_workflow / out / "evaluation" / "shap_mean_abs.csv").exists()
    res = test_workflow / out
    scores = pd.read_csv(res / "evaluation" / "scores.csv")
    assert list(scores.columns) == ["model", "scheme", "subset", "metric", "value", "n"]
    assert set(scores["model"]) >= set(MODEL_NAMES)
    assert set(scores["scheme"]) >= {"sample_cv", "site_cv", "block_cv", "region", "osse_grid"}
    # every model, baselines included, is scored on the OSSE grid
    osse = scores[(scores.scheme == "osse_grid") & (scores.metric == "r2")]
    assert set(osse["model"]) == set(MODEL_NAMES) and osse["value"].notna().all()
    ab = pd.read_csv(res / "evaluation" / "ablation.csv")
    assert {"full", "no_random_id", "no_spatial", "no_convolution"} <= set(ab["variant"])
    assert set(ab.loc[ab.scheme == "osse_grid", "variant"]) == set(ab["variant"])
    # one CV job per scheme x fold (region: per named region), one per ablation variant
    folds = sorted(
        p.relative_to(res / "evaluation" / "so2_cv").as_posix()
        for p in (res / "evaluation" / "so2_cv").glob("*/*.parquet")
    )
    assert folds == sorted(
        [f"sample_cv/{k}.parquet" for k in range(3)]
        + [f"site_cv/{k}.parquet" for k in range(3)]
        + [f"block_cv/{k}.parquet" for k in range(2)]
        + ["region/west.parquet", "region/east.parquet"]
    )
    # sample_cv refits only the configured model (cv.so2_models)
    sample = scores[(scores.scheme == "sample_cv")]
    assert set(sample["model"]) == {"lightgbm"}
    assert set(scores.loc[scores.scheme == "region", "subset"]) == {"all", "west", "east"}
    # the domain mask: cells outside are NaN in the NetCDF, nodata in the GeoTIFFs, and
    # absent from the osse_grid scores
    from gridfuse.mask import read_mask

    mask = read_mask(res / "mask.nc")
    assert 0 < mask.sum() < mask.size
    so2 = read_netcdf(res / "product" / "2018.nc")["so2"]
    assert so2.sizes["time"] == 24
    assert np.isfinite(so2.values[:, mask]).all() and np.isnan(so2.values[:, ~mask]).all()
    tifs = sorted((res / "product" / "geotiff" / "2018").glob("so2_*.tif.gz"))
    assert len(tifs) == 24 and tifs[0].name == "so2_20180820.tif.gz"
    back = read_geotiff(tifs[0])
    np.testing.assert_allclose(np.asarray(back.values).squeeze(), so2.values[0], rtol=1e-6)
    assert np.isnan(np.asarray(back.values).squeeze()[~mask]).all()
    assert (osse["n"] % int(mask.sum()) == 0).all()
    assert set(osse["n"]) == {int(mask.sum()) * (osse["n"].iloc[0] // int(mask.sum()))}


def test_masked_prediction_skips_outside_cells(data, fitted):
    # cells outside the domain are NaN and never built; inside, the values are unchanged,
    # with tiles run side by side on threads
    dyn, st, _ = data
    dyn = dyn.isel(time=slice(0, 4))
    mask = np.zeros(GRID.shape, bool)
    mask[2:9, 3:] = True
    mask[-1, 0] = True
    full = np.concatenate([b for _, b in predict_blocks(fitted, dyn, st, tile=6, time_block=3)])
    masked = np.concatenate(
        [b for _, b in predict_blocks(fitted, dyn, st, tile=6, time_block=3, mask=mask, threads=3)]
    )
    assert np.isnan(masked[:, ~mask]).all()
    np.testing.assert_array_equal(masked[:, mask], full[:, mask])
    from gridfuse.grid import tile_slices as tiles

    ny, nx = GRID.shape
    assert len(list(tiles(ny, nx, 6, mask))) < len(list(tiles(ny, nx, 6)))


def test_fold_jobs_equal_one_process(data):
    # the per-fold jobs recompute the same folds: together they are cross_validate's output
    from gridfuse.cv import RegionHoldout
    from gridfuse.models.so2 import cross_validate_fold, scheme_folds

    frame = data[2]
    lon = frame["lon"].to_numpy()
    mid = float(np.median(lon))
    cv_cfg = {
        "n_splits": 3,
        "regions": {
            "west": [lon.min() - 1, 0, mid, 90],
            "east": [[mid, 0], [lon.max() + 1, 0], [lon.max() + 1, 90], [mid, 90]],
        },
    }
    models = {
        n: (lambda n=n: make("so2", n, params=SETTINGS, features=CFG, grid=GRID))
        for n in ("lightgbm_plain",)
    }
    splitters = {"site_cv": SiteKFold(3, seed=0), "region": RegionHoldout(cv_cfg["regions"])}
    whole = cross_validate(frame, models, splitters, history=frame)
    parts = [
        cross_validate_fold(frame, models, s, splitters[s], k, history=frame)
        for s in splitters
        for k in scheme_folds(s, cv_cfg)
    ]
    assert scheme_folds("region", cv_cfg) == ["west", "east"]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    with pytest.raises(ValueError, match="no fold"):
        cross_validate_fold(frame, models, "site_cv", splitters["site_cv"], 7)
    with pytest.raises(ValueError, match=r"regions \['nowhere'\] hold no station"):
        cross_validate_fold(
            frame, models, "region", RegionHoldout({"nowhere": [0, 0, 1, 1]}), "nowhere"
        )


def test_osse_baseline_scores_known_answers(data):
    # a truth equal to a model's own gridded prediction scores R2 = 1 / RMSE = 0 for it;
    # only every k-th day is scored; the LSTM is gridded from each cell's preceding days
    dyn, st, frame = data
    dyn = dyn.isel(time=slice(0, 12))
    model = make("so2", "lightgbm_plain", params=SETTINGS, features=CFG, grid=GRID).fit(frame)
    truth = predict_year(model, dyn, st, tile=8, time_block=4)
    models = {
        n: (lambda n=n: make("so2", n, params=SETTINGS, features=CFG, grid=GRID))
        for n in ("lightgbm_plain", "lstm")
    }
    sc = osse_baseline_scores(
        models, frame, dyn, st, truth, every=3, tile=10, metrics=("r2", "rmse")
    )
    assert set(sc["scheme"]) == {"osse_grid"}
    days = pd.DatetimeIndex(dyn["time"].values)
    n_days = int(((days - pd.Timestamp("1970-01-01")).days % 3 == 0).sum())
    assert 0 < n_days < len(days)
    assert (sc["n"] == n_days * GRID.shape[0] * GRID.shape[1]).all()
    sc = sc.set_index(["model", "metric"])["value"]
    assert sc["lightgbm_plain", "r2"] == pytest.approx(1.0)
    assert sc["lightgbm_plain", "rmse"] == pytest.approx(0.0, abs=1e-5)
    assert np.isfinite(sc["lstm", "rmse"]) and sc["lstm", "rmse"] > 0


def test_osse_pairs_scored_as_they_come_equal_the_pooled_scores(tmp_path):
    """OssePairs (chunks of 7 values, NaN pairs dropped) gives the scores of the pooled
    pairs (metrics.score_rows) to 1e-9; osse_grid_scores reads two yearly files a day at a
    time and scores every 2nd day inside the mask as the pooled pairs of those days score."""
    import xarray as xr

    from gridfuse.metrics import score_rows
    from gridfuse.models.so2.evaluation import OssePairs, osse_grid_scores

    rng = np.random.default_rng(5)
    obs = rng.gamma(2.0, 6.0, 1000).astype("f4")
    pred = (obs * rng.lognormal(0, 0.3, 1000) + 2).astype("f4")
    obs[::17], pred[::23] = np.nan, np.nan
    metrics = ("r2", "rmse", "mae", "rb", "cc", "kge")
    pairs = OssePairs(chunk=7)
    for lo, hi in [(0, 5), (5, 333), (333, 1000)]:
        pairs.add(obs[lo:hi], pred[lo:hi])
    got = pd.DataFrame(pairs.rows("m", metrics))
    want = pd.DataFrame(score_rows("m", "osse_grid", "all", obs, pred, metrics=metrics))
    pd.testing.assert_frame_equal(got, want, rtol=1e-9)
    with pytest.raises(ValueError, match="unknown metrics"):
        pairs.rows("m", ("nse",))

    mask = np.ones((6, 5), bool)
    mask[:2, :2] = False
    files, keep_o, keep_p = {"p": [], "t": []}, [], []
    for year in (2019, 2020):
        times = pd.date_range(f"{year}-12-25", periods=4)
        t = rng.gamma(2.0, 6.0, (4, 6, 5)).astype("f4")
        p = (t + rng.normal(0, 2, t.shape)).astype("f4")
        for kind, v in (("p", p), ("t", t)):
            path = tmp_path / f"{kind}{year}.nc"
            xr.Dataset({"so2": (("time", "lat", "lon"), v)}, coords={"time": times}).to_netcdf(path)
            files[kind].append(path)
        even = np.asarray((times - pd.Timestamp("1970-01-01")).days % 2 == 0)
        keep_o.append(t[even][:, mask].ravel())
        keep_p.append(p[even][:, mask].ravel())
    sc = osse_grid_scores(files["p"], files["t"], "lightgbm", every=2, mask=mask)
    ref = score_rows(
        "lightgbm",
        "osse_grid",
        "all",
        np.concatenate(keep_o),
        np.concatenate(keep_p),
        metrics=("r2", "rmse", "mae", "rb", "cc"),
    )
    pd.testing.assert_frame_equal(sc, pd.DataFrame(ref, columns=sc.columns), rtol=1e-9)
    assert (sc["n"] == 2 * 2 * 26).all()


def test_cv_and_ablation_plans_from_the_config_alone():
    from gridfuse.models.so2 import ablation_plan, cv_plan

    cv_cfg = {
        "n_splits": 4,
        "block_size": 0.5,
        "block_splits": 2,
        "regions": {"a": [0, 0, 1, 1], "b": [[1, 0], [2, 0], [2, 1]]},
        "so2_models": {"sample_cv": ["lightgbm"]},
        "ablation_schemes": ["site_cv", "block_cv"],
    }
    plan = cv_plan(["sample_cv", "block_cv", "region"], cv_cfg, ["lightgbm_plain", "rf_ps"])
    assert [(j["scheme"], j["fold"]) for j in plan] == [
        *(("sample_cv", str(k)) for k in range(4)),
        ("block_cv", "0"),
        ("block_cv", "1"),
        ("region", "a"),
        ("region", "b"),
    ]
    assert plan[0]["models"] == ["lightgbm"] and plan[0]["train_share"] == 0.75
    assert plan[-1]["models"] == ["lightgbm", "lightgbm_plain", "rf_ps"]
    ab = ablation_plan(dataclasses.replace(CFG, convolution=False), cv_cfg)
    assert [a["variant"] for a in ab] == ["full", "no_random_id", "no_spatial", "with_convolution"]
    assert all(a["fits"] == 6 for a in ab)
    assert ab[3]["columns"] == ab[0]["columns"] + CFG.m1 + CFG.m2
    with pytest.raises(ValueError, match="cv.regions is empty"):
        cv_plan(["region"], {**cv_cfg, "regions": {}}, [])
