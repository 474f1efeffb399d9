"""Report figures and tables (gridfuse.plots), and the rendered Snakemake report."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse import plots
from gridfuse.grid import Grid
from gridfuse.io import write_absent, write_netcdf

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
GRID = Grid(100.0, 30.0, 100.5, 30.4, 0.1)  # 4 x 5
DAYS = pd.date_range("2020-01-01", periods=10, freq="D")


def _field(scale=1.0) -> xr.DataArray:
    t = np.arange(10, dtype="f4")[:, None, None]
    r, c = np.indices(GRID.shape)
    data = scale * (t + 0.1 * r + 0.01 * c).astype("f4")
    return xr.DataArray(
        data, dims=("time", "lat", "lon"), coords={"time": DAYS, **GRID.coords()}, name="precip"
    )


def _png(path) -> np.ndarray:
    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) > 50
    return img


def test_pick_days_spread_and_explicit():
    f = _field()
    # the domain mean grows with time: the last day of each half is picked
    assert plots.pick_days(f, n=2) == [DAYS[4], DAYS[9]]
    assert plots.pick_days(f, n=1) == [DAYS[9]]
    assert plots.pick_days(f, days=["2020-01-03", "2021-05-05"]) == [DAYS[2]]
    with pytest.raises(ValueError, match="none of the report days"):
        plots.pick_days(f, days=["2021-05-05"])


def test_station_pairs_take_the_station_cell_and_observed_days():
    f = _field()
    stations = pd.DataFrame(
        {
            "station": ["A", "B", "C"],
            "lat": [GRID.lat[1], GRID.lat[3] + 0.02, GRID.lat[0]],
            "lon": [GRID.lon[2], GRID.lon[0] - 0.03, GRID.lon[4]],
            "role": ["evaluation", "evaluation", "train"],
        }
    )
    daily = pd.DataFrame(
        {
            "station": ["A", "A", "B", "C"],
            "date": pd.to_datetime(["2020-01-02", "2020-01-05", "2020-01-10", "2020-01-02"]),
            "value": [5.0, 6.0, 7.0, 8.0],
        }
    )
    pairs = plots.station_pairs({"m": f}, stations, daily)
    assert len(pairs) == 3 and set(pairs["station"]) == {"A", "B"}  # C is a training station
    got = pairs.set_index(["station", "date"])["pred"]
    assert got[("A", pd.Timestamp("2020-01-02"))] == pytest.approx(1 + 0.1 * 1 + 0.01 * 2)
    assert got[("B", pd.Timestamp("2020-01-10"))] == pytest.approx(9 + 0.1 * 3)
    assert pairs.set_index(["station", "date"])["obs"][("A", pd.Timestamp("2020-01-05"))] == 6.0


def test_scores_html_bold_best_per_column(tmp_path):
    rows = []
    for model, rmse, kge, rb in (
        ("mpfm", 1.0, 0.7, -5.0),
        ("era5", 2.0, 0.8, 2.0),
        ("owa", 1.5, 0.1, 9.0),
    ):
        for metric, v in (("rmse", rmse), ("kge", kge), ("rb", rb)):
            rows.append(
                dict(model=model, scheme="holdout", subset="all", metric=metric, value=v, n=30)
            )
    out = plots.scores_html(pd.DataFrame(rows), tmp_path / "s.html", first=["mpfm"])
    text = out.read_text()
    assert "holdout" in text
    body = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", text)
    assert [m for m, _ in body] == ["mpfm", "era5", "owa"]  # 'first' models lead
    cells = {m: re.findall(r"<td>(<b>)?([-\d.]+)", rest) for m, rest in body}
    # columns in METRICS order: rmse, rb, kge; best: lowest rmse, smallest |rb|, highest kge
    assert cells["mpfm"][0] == ("<b>", "1.000")
    assert cells["era5"][1] == ("<b>", "2.000") and cells["mpfm"][1][0] == ""
    assert cells["era5"][2] == ("<b>", "0.800")


def test_figures_are_written(tmp_path):
    f = _field()
    st = pd.DataFrame(
        {
            "date": [DAYS[9]],
            "lon": [GRID.lon[1]],
            "lat": [GRID.lat[1]],
            "value": [9.0],
            "role": ["evaluation"],
        }
    )
    maps = plots.plot_day_maps(
        {"product": f, "truth": f * 1.1, "era5": f.isel(time=slice(0, 5))},
        [DAYS[4], DAYS[9]],
        tmp_path / "maps.png",
        stations=st,
    )
    img = _png(maps)
    assert img.shape[1] > img.shape[0]  # three columns, two rows
    pairs = pd.DataFrame(
        {"model": ["a"] * 50 + ["b"] * 50, "obs": np.r_[np.arange(50.0), np.arange(50.0)]}
    ).assign(pred=lambda d: d["obs"] * np.where(d["model"] == "a", 1.0, 0.5))
    _png(plots.plot_scatter(pairs, tmp_path / "scatter.png"))
    scores = pd.DataFrame(
        [
            dict(model=m, scheme=s, subset="all", metric=k, value=v, n=10)
            for m, v in (("mpfm", 1.0), ("era5", 2.0))
            for s in ("holdout", "site_cv")
            for k in ("rmse", "kge")
        ]
    )
    _png(plots.plot_scores(scores, tmp_path / "scores.png"))
    interp = pd.DataFrame(
        [
            dict(source=s, method=m, metric="rmse", value=v, n=5)
            for s in ("era5", "imerg")
            for m, v in (("nearest", 1), ("bilinear", 0.9))
        ]
    )
    _png(plots.plot_interpolation(interp, tmp_path / "interp.png"))
    curve = pd.DataFrame(
        {
            "seed": [0] * 3 + [1] * 3,
            "epoch": [1, 2, 3] * 2,
            "train_loss": [3, 2, 1] * 2,
            "val_rmse": [2, 1.5, 1.4] * 2,
        }
    )
    _png(plots.plot_training_curves({"mpfm_era5": curve}, tmp_path / "train.png"))
    abl = pd.DataFrame(
        [
            dict(variant=v, removed=v[3:], scheme="site_cv", metric="r2", value=0.5, n=9, delta=d)
            for v, d in (("full", 0.0), ("no_random_id", -0.1))
        ]
    )
    _png(plots.plot_ablation(abl, tmp_path / "abl.png"))


def test_empty_inputs_give_placeholders(tmp_path):
    empty = pd.DataFrame(columns=["model", "obs", "pred"])
    small = _png(plots.plot_scatter(empty, tmp_path / "a.png"))
    assert small.shape[0] < 300
    _png(plots.plot_training_curves({}, tmp_path / "b.png"))
    abl = pd.DataFrame([dict(variant="full", scheme="s", metric="r2", value=1, delta=0)])
    _png(plots.plot_ablation(abl, tmp_path / "c.png"))


def test_read_days_skips_absent_years(tmp_path):
    write_netcdf(_field().to_dataset(), tmp_path / "2020.nc")
    write_absent(tmp_path / "2019.nc", source="x", year=2019, reason="not covered")
    da = plots.read_days([tmp_path / "2019.nc", tmp_path / "2020.nc"], "precip", DAYS[[1, 3]])
    assert da.sizes["time"] == 2 and float(da.isel(time=1, lat=0, lon=0)) == pytest.approx(3.0)
    assert plots.read_days([tmp_path / "2019.nc"], "precip") is None
    with pytest.raises(ValueError, match="no variable 'so2'"):
        plots.read_days([tmp_path / "2020.nc"], "so2")


def _years(tmp_path, name, ny, nx, seed=0):
    """Yearly files of a (time, lat, lon) field with NaN cells: two short years (the first
    with its days' means falling, the second rising) and an absent marker before them."""
    rng = np.random.default_rng(seed)
    grid = Grid(100.0, 30.0, 100.0 + nx * 0.01, 30.0 + ny * 0.01, 0.01)
    paths = [tmp_path / name / "2018.nc"]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    write_absent(paths[0], source=name, year=2018, reason="not covered")
    for year, days in ((2019, pd.date_range("2019-12-20", "2019-12-31")), (2020, DAYS)):
        data = rng.gamma(0.5, 4.0, (days.size, ny, nx)).astype("f4")
        data[:, : ny // 4, : nx // 3] = np.nan  # outside the mask
        data[:, -1, -1] = np.nan
        da = xr.DataArray(
            data, dims=("time", "lat", "lon"), coords={"time": days, **grid.coords()}, name="v"
        )
        paths.append(write_netcdf(da.to_dataset(), tmp_path / name / f"{year}.nc"))
    return grid, paths


def test_days_are_chosen_without_holding_the_period(tmp_path):
    """choose_days reads the domain means one day (or block) at a time: the same days as
    pick_days of the whole period read into memory, and the same configured days."""
    _, paths = _years(tmp_path, "product", 30, 41)
    whole = plots.read_days(paths, "v")
    means = plots.daily_means(paths, "v", block=1)
    assert means.index.equals(pd.DatetimeIndex(whole["time"].values))
    np.testing.assert_array_equal(means.to_numpy(), whole.mean(("lat", "lon")).values)
    for n in (1, 2, 3, 7):
        want = plots.pick_days(whole, n=n)
        assert plots.choose_days(paths, "v", n=n) == want
        assert plots.choose_days(paths, "v", n=n, block=5) == want
    days = ["2020-01-04", "2019-12-25", "1999-01-01"]
    assert plots.choose_days(paths, "v", days=days) == plots.pick_days(whole, days=days)
    with pytest.raises(ValueError, match="none of the report days"):
        plots.choose_days(paths, "v", days=["1999-01-01"])
    with pytest.raises(ValueError, match="no v data"):
        plots.choose_days(paths[:1], "v")


def _drawn(draw) -> np.ndarray:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2.6))
    draw(ax)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return img


@pytest.mark.parametrize("ascending", [False, True])
def test_a_small_map_is_drawn_as_before(ascending):
    """A grid within MAP_CELLS is drawn cell for cell, as before the block means: the same
    pixels as the float64 image at the grid's extent."""
    import matplotlib.pyplot as plt

    field = _field(scale=0.7).isel(time=3)
    field = field.where(field.lat > GRID.lat[-1])  # a row without data
    if ascending:
        field = field.isel(lat=slice(None, None, -1))
    st = pd.DataFrame({"lon": [GRID.lon[1]], "lat": [GRID.lat[2]], "value": [4.0]})
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    new = _drawn(lambda ax: plots._draw_map(ax, field, st, cmap, 8.0))

    def before(ax):
        img = np.asarray(_field(scale=0.7).isel(time=3).values, dtype="f8")
        img[-1] = np.nan
        extent = (100.0, 100.5, 30.0, 30.4)
        ax.imshow(
            np.ma.masked_invalid(img),
            extent=extent,
            origin="upper",
            cmap=cmap,
            vmin=0,
            vmax=8.0,
            interpolation="nearest",
            aspect="auto",
        )
        edge = np.array(["w"])
        ax.scatter(st["lon"], st["lat"], c=st["value"], cmap=cmap, vmin=0, vmax=8.0, s=22,
                   edgecolors=edge, linewidths=0.8)  # fmt: skip
        ax.tick_params(labelsize=7)

    np.testing.assert_array_equal(new, _drawn(before))
    out, f = plots.block_mean(field.values)
    assert f == 1 and out.dtype == np.float32
    np.testing.assert_array_equal(out, field.values)


def test_a_large_panel_is_drawn_as_block_means():
    """A panel of more than MAP_CELLS cells per side is reduced to at most that many by
    NaN-aware block means (float32); the axes keep the grid's extent."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    ny, nx = 2_345, 1_001
    img = rng.normal(size=(ny, nx)).astype("f4")
    img[:10, :] = np.nan
    img[501:504, 699:702] = np.nan  # one whole block of f = 3 without data
    out, f = plots.block_mean(img)
    assert f == 3 and out.shape == (782, 334) and out.dtype == np.float32
    assert max(out.shape) <= plots.MAP_CELLS
    padded = np.full((782 * 3, 334 * 3), np.nan, "f4")
    padded[:ny, :nx] = img
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="Mean of empty"):
        want = np.nanmean(padded.reshape(782, 3, 334, 3), axis=(1, 3))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert np.isnan(out[0, 0]) and np.isnan(out[167, 233])
    assert np.isfinite(out[-1, -1])  # the last, partial block: the mean of its cells
    small, g = plots.block_mean(img, cap=100)
    assert g == 24 and max(small.shape) <= 100

    grid = Grid(70.0, 15.0, 70.0 + nx * 0.01, 15.0 + ny * 0.01, 0.01)
    da = xr.DataArray(img, dims=("lat", "lon"), coords=grid.coords())
    fig, ax = plt.subplots()
    plots._draw_map(ax, da, None, "viridis", 2.0)
    drawn = ax.images[0].get_array()
    assert drawn.shape == out.shape and drawn.dtype == np.float32
    np.testing.assert_allclose(ax.get_xlim(), (grid.west, grid.east))
    np.testing.assert_allclose(ax.get_ylim(), (grid.south, grid.north))
    plt.close(fig)


def test_station_pairs_read_from_the_files_equal_the_whole_fields(tmp_path):
    """report_scatter's pairs from the stations' cells of the files (values_at_cells, over
    several storage chunks and time blocks, absent years skipped) are those of the whole
    fields held in memory, and the cells are the nearest ones (as before station_cells)."""
    grid, product = _years(tmp_path, "product", 700, 30)
    _, era5 = _years(tmp_path, "era5", 700, 30, seed=1)
    rng = np.random.default_rng(2)
    n = 12
    # away from the cell edges, where the nearest centre is not a tie
    rows, cols = rng.integers(0, 700, n), rng.integers(0, 30, n)
    stations = pd.DataFrame(
        {
            "station": [f"{i:05d}" for i in range(n)],
            "lat": grid.lat[rows] + rng.uniform(-0.004, 0.004, n),
            "lon": grid.lon[cols] + rng.uniform(-0.004, 0.004, n),
            "role": np.where(np.arange(n) % 4 == 0, "train", "evaluation"),
        }
    )
    stations.loc[1, ["lat", "lon"]] = [grid.lat[1], grid.lon[1]]  # in the masked corner
    times = pd.DatetimeIndex(plots.read_days(product, "v")["time"].values)
    daily = pd.DataFrame(
        [(s, d, float(k)) for k, (s, d) in enumerate(zip(stations["station"], times))]
        + [(s, times[-1], 1.0) for s in stations["station"]]
        + [("00003", pd.Timestamp("2021-01-01"), 2.0)]  # a day no field has
    ).set_axis(["station", "date", "value"], axis=1)
    files = {"product": product, "era5": era5}
    whole = plots.station_pairs(
        {k: plots.read_days(v, "v") for k, v in files.items()}, stations, daily
    )
    read = plots.station_pairs_from_files(files, "v", stations, daily, time_block=5)
    pd.testing.assert_frame_equal(read, whole)
    assert list(read.columns) == ["model", "station", "date", "obs", "pred"]
    assert len(read) == 2 * (9 + 9) and read["pred"].isna().any()  # the masked station
    # the nearest cell's value, as station_pairs took it before (argmin of the distances)
    field = plots.read_days(product, "v")
    ev = stations[stations["role"] == "evaluation"]
    r = np.abs(field.lat.values[None] - ev["lat"].to_numpy()[:, None]).argmin(axis=1)
    c = np.abs(field.lon.values[None] - ev["lon"].to_numpy()[:, None]).argmin(axis=1)
    last = read[(read["model"] == "product") & (read["date"] == times[-1])]
    np.testing.assert_array_equal(last["pred"].to_numpy(), field.values[-1, r, c])
    assert plots.station_pairs_from_files({"x": product[:1]}, "v", stations, daily).empty


def test_oof_pairs_read_only_the_chosen_scheme(tmp_path):
    """report_scatter (SO2) reads one scheme's headline rows of the out-of-fold table: the
    rows the whole table filtered gave; the first scheme when the wanted one is missing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    n = 900
    oof = pd.DataFrame(
        {
            "model": rng.choice(["lightgbm", "rf_ps"], n),
            "scheme": np.repeat(["block_cv", "site_cv", "osse"], n // 3),
            "subset": rng.choice(["all", "urban"], n),
            "station": rng.choice(["a", "b", "c"], n),
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 30, n), "D"),
            "obs": rng.random(n),
            "pred": rng.random(n),
        }
    )
    path = tmp_path / "so2_oof.parquet"
    pq.write_table(pa.Table.from_pandas(oof, preserve_index=False), path, row_group_size=100)
    for scheme, want in (("site_cv", "site_cv"), ("nope", "block_cv")):
        rows, chosen = plots.oof_pairs(path, scheme)
        old = oof[(oof["scheme"] == want) & (oof["subset"] == "all")].reset_index(drop=True)
        assert chosen == want
        pd.testing.assert_frame_equal(rows, old, check_dtype=False)
    pq.write_table(pa.Table.from_pandas(oof.iloc[:0], preserve_index=False), path)
    rows, chosen = plots.oof_pairs(path, "site_cv")
    assert rows.empty and chosen == "site_cv"


# ---------------------------------------------------------------------- the rendered report
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, test_workflow):
    """Build the report of the tiny test config's run and open it in headless Chromium."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium) for the rendering check")
    work = test_workflow
    base = [SNAKEMAKE, "--cores", "2", "--configfile", str(ROOT / "configs" / "test.yaml")]
    base += ["--directory", str(work), "-s", str(ROOT / "Snakefile")]
    html = work / "results" / "report.html"
    run = subprocess.run(
        base + ["--report", str(html)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-4000:]
    figures = sorted(p.name for p in (work / "results" / "test_precip" / "report").iterdir())
    assert figures == [
        "input_qc.csv",  # the input QC table (report_input_qc) and its summary
        "input_qc.html",
        "interpolation.png",
        "maps.png",
        "scatter.png",
        "scores.html",
        "scores.png",
        "training.png",
    ]

    profile = tmp_path / "chrome-profile"
    flags = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000"]
    dom = subprocess.run(
        flags + ["--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=180
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the report is a React app: the categories appear in the DOM only when its script ran
    for text in ("test_precip", "test_so2", "gridfuse builds daily gridded products"):
        assert text in dom.stdout, f"{text!r} not in the rendered DOM"
    shot = tmp_path / "report.png"
    cap = subprocess.run(
        flags + ["--window-size=1400,1000", f"--screenshot={shot}", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cap.returncode == 0 and shot.exists(), cap.stderr[-2000:]
    img = _png(shot)
    assert img[..., :3].std() > 0.02  # not a blank page


@pytest.mark.parametrize("config", ["config.yaml", "configs/test.yaml"])
def test_captions_render_as_clean_rst(config):
    """Every caption (Jinja2 then reStructuredText, as snakemake --report does) without errors."""
    import io

    import jinja2
    import yaml
    from docutils.core import publish_parts
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / config).read_text())
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    product = next(iter(cfg["products"]))

    class Smk:
        config = cfg
        wildcards = {"product": product}

    captions = sorted((ROOT / "workflow" / "report").glob("*.rst"))
    assert {p.name for p in captions} >= {"workflow.rst", "maps.rst", "scatter.rst", "shap.rst"}
    for path in captions:
        for trim in (True, False):
            env = jinja2.Environment(trim_blocks=trim, lstrip_blocks=trim)
            text = env.from_string(path.read_text()).render(snakemake=Smk)
            errors = io.StringIO()
            html = publish_parts(
                text, writer_name="html", settings_overrides={"warning_stream": errors}
            )["body"]
            assert errors.getvalue() == "", f"{path.name}: {errors.getvalue()}"
            assert "System Message" not in html
    text = jinja2.Template((ROOT / "workflow" / "report" / "workflow.rst").read_text()).render(
        snakemake=Smk
    )
    assert all(name in text for name in cfg["products"])
