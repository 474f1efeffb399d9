"""Tiled prediction I/O, score statistics, and the precipitation workflow end to end."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse import io, metrics, quality
from gridfuse.evaluate import (
    SCORE_COLUMNS,
    add_stats,
    rows_from_stats_frame,
    score_rows,
    scores_from_stats,
    stats_frame,
    sufficient_stats,
)
from gridfuse.grid import Grid
from gridfuse.predict import (
    YearlyFields,
    availability_key,
    available_sources,
    grid_inputs,
    source_fields,
    write_product,
    year_days,
)

ROOT = Path(__file__).resolve().parents[1]
GRID = Grid(100.0, 30.0, 100.05, 30.04, 0.01)  # 4 x 5 cells


def _year_file(path, year, value):
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31")
    da = GRID.template(days, name="precip")
    da.values[:] = value + np.arange(len(days), dtype="f4")[:, None, None]
    io.write_netcdf(da, path)
    return days


# ------------------------------------------------------------------ reading and writing
def test_yearly_fields_cross_year_boundaries_and_absent_years(tmp_path):
    _year_file(tmp_path / "2019.nc", 2019, 100.0)
    io.write_absent(tmp_path / "2020.nc", source="gsmap", year=2020, reason="test")
    f = YearlyFields({2019: tmp_path / "2019.nc", 2020: tmp_path / "2020.nc"}, GRID, "precip")
    out = f.read(pd.date_range("2019-12-30", "2020-01-02"))
    assert out.shape == (4, 4, 5)
    np.testing.assert_allclose(out[:2, 0, 0], [100.0 + 363, 100.0 + 364])
    assert np.isnan(out[2:]).all()
    assert np.isnan(f.read(pd.date_range("2018-12-31", periods=1))).all()
    f.close()
    files = {"era5": tmp_path / "2019.nc", "gsmap": tmp_path / "2020.nc"}
    assert available_sources(files) == ["era5"]
    assert availability_key(["era5", "imerg"]) == "era5-imerg"


def test_yearly_fields_reject_a_wrong_grid(tmp_path):
    _year_file(tmp_path / "2019.nc", 2019, 0.0)
    with pytest.raises(ValueError, match="grid is"):
        YearlyFields({2019: tmp_path / "2019.nc"}, Grid(100, 30, 100.1, 30.1, 0.01), "precip")


def test_source_fields_check_the_coverage_and_inputs_keep_to_the_period(tmp_path):
    """Each source's year files become one reader; a source whose file of the year is an
    absent marker is an error naming the year; days outside the period read as NaN."""
    for src, value in (("era5", 1.0), ("gsmap", 50.0)):
        (tmp_path / src).mkdir()
        for year in (2019, 2020):
            _year_file(tmp_path / src / f"{year}.nc", year, value)
    files = {s: [tmp_path / s / "2019.nc", tmp_path / s / "2020.nc"] for s in ("era5", "gsmap")}
    fields = source_fields(files, 2020, GRID, "precip")
    assert list(fields) == ["era5", "gsmap"]
    period = pd.date_range("2019-06-01", "2020-01-01")
    read = grid_inputs(["gsmap", "lat"], fields, {}, GRID, period=period)
    out = read(pd.date_range("2019-12-31", "2020-01-02"))
    assert out.shape == (3, 2, 4, 5)
    np.testing.assert_allclose(out[:2, 0, 0, 0], [50.0 + 364, 50.0])
    assert np.isnan(out[2]).all() and np.isfinite(out[:2]).all()
    assert list(year_days("2019-06-01", "2020-01-01", 2020)) == [pd.Timestamp("2020-01-01")]
    assert len(year_days("2019-06-01", "2020-01-01", 2019)) == 214
    io.write_absent(tmp_path / "gsmap" / "2020.nc", source="gsmap", year=2020, reason="test")
    with pytest.raises(ValueError, match="2020: downscaled files present for .'era5'.*first_year"):
        source_fields(files, 2020, GRID, "precip")
    with pytest.raises(ValueError, match="era5: no file for 2021"):
        source_fields(files, 2021, GRID, "precip")


def test_write_product_blocks_cf_and_provenance(tmp_path):
    days = pd.date_range("2020-01-01", periods=5)
    values = np.random.default_rng(0).gamma(0.5, 2, (5,) + GRID.shape).astype("f4")
    blocks = iter([(slice(0, 3), values[:3]), (slice(3, 5), values[3:])])
    path = write_product(
        tmp_path / "p.nc",
        blocks,
        GRID,
        days,
        cfg={"a": 1},
        sources=["era5"],
        attrs={"model": "mpfm"},
    )
    ds = io.read_netcdf(path, load=True)
    np.testing.assert_array_equal(ds["precip"].values, values)
    assert ds["precip"].dtype == np.float32 and ds["precip"].attrs["units"] == "mm day-1"
    assert ds["precip"].encoding["zlib"] and ds["precip"].encoding["chunksizes"][0] == 1
    assert (
        ds.attrs["sources"] == "era5" and ds.attrs["model"] == "mpfm" and "config_hash" in ds.attrs
    )
    np.testing.assert_allclose(ds["lat"].values, GRID.lat)
    assert pd.DatetimeIndex(ds["time"].values).equals(days)
    assert not list(tmp_path.glob(".p.nc*"))  # no temporary left behind


def test_write_product_leaves_nothing_on_failure(tmp_path):
    def blocks():
        yield slice(0, 1), np.zeros((1,) + GRID.shape, "f4")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_product(tmp_path / "p.nc", blocks(), GRID, pd.date_range("2020-01-01", periods=2))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ score statistics
def _pair(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    obs = rng.gamma(0.4, 5.0, n) * (rng.random(n) < 0.5)
    pred = np.maximum(obs * rng.lognormal(0, 0.4, n) + rng.normal(0, 0.5, n), 0)
    obs[::97] = np.nan
    pred[::89] = np.nan
    return obs, pred


def test_stats_scores_match_gridfuse_metrics_and_xskillscore():
    xs = pytest.importorskip("xskillscore")
    obs, pred = _pair()
    s = scores_from_stats(sufficient_stats(obs, pred, [0.1, 1.0]), 0.1)
    for m in ("rmse", "mae", "rb", "cc", "r2", "kge"):
        assert s[m] == pytest.approx(float(getattr(metrics, m)(obs, pred)), rel=1e-9), m
    for m in ("pod", "far", "csi"):
        assert s[m] == pytest.approx(float(getattr(metrics, m)(obs, pred, 0.1)), rel=1e-9), m
    ok = np.isfinite(obs) & np.isfinite(pred)
    o = xr.DataArray(obs[ok], dims="s")
    p = xr.DataArray(pred[ok], dims="s")
    assert s["rmse"] == pytest.approx(float(xs.rmse(o, p)), rel=1e-9)
    assert s["mae"] == pytest.approx(float(xs.mae(o, p)), rel=1e-9)
    assert s["cc"] == pytest.approx(float(xs.pearson_r(o, p)), rel=1e-9)
    cont = xs.Contingency(
        o, p, np.array([-np.inf, 1.0, np.inf]), np.array([-np.inf, 1.0, np.inf]), dim="s"
    )
    s1 = scores_from_stats(sufficient_stats(obs, pred, [0.1, 1.0]), 1.0)
    assert s1["pod"] == pytest.approx(float(cont.hit_rate()), rel=1e-9)
    assert s1["far"] == pytest.approx(float(cont.false_alarm_ratio()), rel=1e-9)
    assert s1["csi"] == pytest.approx(float(cont.threat_score()), rel=1e-9)


def test_stats_of_parts_add_up_to_the_whole():
    obs, pred = _pair(1)
    whole = sufficient_stats(obs, pred)
    parts = add_stats(
        sufficient_stats(obs[:700], pred[:700]), sufficient_stats(obs[700:], pred[700:])
    )
    for k, v in whole.items():
        assert parts[k] == pytest.approx(v, rel=1e-12)


def test_perfect_prediction_and_score_rows():
    obs = np.array([0.0, 0.5, 2.0, 10.0])
    rows = score_rows("mpfm", "holdout", sufficient_stats(obs, obs, [0.1, 1.0]))
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    v = df.set_index(["subset", "metric"])["value"]
    assert (
        v[("all", "rmse")] == 0 and v[("all", "csi")] == 1 and v[("all", "kge")] == pytest.approx(1)
    )
    assert v[("threshold_1mm", "pod")] == 1 and (df["n"] == 4).all()
    assert set(df["metric"]) == {"rmse", "mae", "rb", "cc", "r2", "kge", "pod", "far", "csi"}
    frame = stats_frame(
        [("era5", "osse_grid", "all", sufficient_stats(obs, obs + 1, [0.1, 1.0]))] * 2
    )
    merged = pd.DataFrame(rows_from_stats_frame(frame, [0.1, 1.0]))
    assert merged.loc[merged.metric == "mae", "value"].item() == pytest.approx(1.0)
    assert merged.loc[merged.metric == "mae", "n"].item() == 8


# ------------------------------------------------------------------ workflow
def test_availability_sets_in_the_dag(tmp_path):
    """A period across 1997/1998 needs an ERA5-only model and an ERA5+IMERG model."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "seed: 1\nresults: results\nproducts:\n  old_precip:\n    kind: precip\n"
        "    grid: {west: 101.5, south: 36.4, east: 101.6, north: 36.5, res: 0.01}\n"
        '    period: {start: "1997-12-01", end: "1998-01-31"}\n'
        "    synthetic: {enabled: true}\n"
        "    sources: {era5: {format: era5}, imerg: {format: imerg_hhr}}\n"
    )
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/snakemake"), "-n", "--cores", "1", "-s", str(ROOT / "Snakefile")]
        + ["--configfile", str(cfg), "--directory", str(tmp_path)]
        + ["results/old_precip/product/1997.nc", "results/old_precip/product/1998.nc"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "results/old_precip/model/mpfm/era5.pt" in out
    assert "results/old_precip/model/mpfm/era5-imerg.pt" in out


@pytest.mark.slow
def test_workflow_test_precip_end_to_end(test_workflow):
    """test_precip: samples -> networks -> product -> scores.csv (the shared test-config run)."""
    res = test_workflow / "results" / "test_precip"
    scores = pd.read_csv(res / "evaluation" / "scores.csv")
    assert list(scores.columns) == SCORE_COLUMNS
    models = set(scores["model"])
    assert {"mpfm", "cnn3d", "biconvlstm", "oora", "owa", "ievw", "rf", "lightgbm", "mlp"} <= models
    assert {"era5", "gsmap", "gldas", "imerg", "cmorph"} <= models
    assert {"holdout", "site_cv", "osse_grid", "osse_stations"} <= set(scores["scheme"])
    # the product and the gauge-only interpolations in every scheme
    for scheme in ("holdout", "site_cv", "osse_grid", "osse_stations"):
        have = set(scores.loc[scores.scheme == scheme, "model"])
        assert {"product", "idw", "ok"} <= have, (scheme, sorted(have))
    spec = json.loads(
        (res / "model" / "product" / "era5-gsmap-gldas-imerg-cmorph.json").read_text()
    )
    assert spec["net"] in ("mpfm", "mpfm_g") and spec["correction"] in ("none", "idw", "ok")
    for year in (2019, 2020):
        ds = io.read_netcdf(res / "product" / f"{year}.nc", load=True)
        assert ds["precip"].dtype == np.float32 and float(ds["precip"].min()) >= 0
        assert np.isfinite(ds["precip"].values).all()
        # the quality layer: every synthetic source present on every cell-day
        flags = quality.decode(ds["source_flags"].values, ds["source_flags"].flag_meanings)
        assert set(flags) == {"era5", "gsmap", "gldas", "imerg", "cmorph"}
        assert all(v.all() for v in flags.values())
    tifs = sorted((res / "product" / "geotiff" / "2020").glob("precip_*.tif"))
    assert len(tifs) == 12 and tifs[0].name == "precip_20200101.tif"
    for net in ("mpfm", "mpfm_g"):  # the product's two networks
        curve = res / "evaluation" / f"training_curve_{net}_era5-gsmap-gldas-imerg-cmorph.csv"
        assert len(pd.read_csv(curve)) >= 1
