"""Precipitation OSSE synthesizer: truth climate, error knobs, zero-error identity, workflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gridfuse.daily import DayWindow
from gridfuse.grid import Grid
from gridfuse.io import is_absent, read_netcdf
from gridfuse.sources import READERS
from gridfuse.synth.fields import aggregate_mean, fractal_dem, gaussian_field
from gridfuse.synth.precip import (
    SourceErrors,
    TruthParams,
    apply_errors,
    native_cells,
    step_weights,
    synth_truth,
    synthesize_precip,
)

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {
    "era5": "era5",
    "imerg": "imerg_hhr",
    "gsmap": "gsmap_hourly",
    "gldas": "gldas",
    "cmorph": "cmorph",
}


def test_aggregate_mean_known_blocks():
    fine = Grid(0.0, 0.0, 0.4, 0.4, 0.1)
    field = np.arange(16.0).reshape(4, 4)  # rows lat .35 .. .05; cols lon .05 .. .35
    out = aggregate_mean(field, fine.lat, fine.lon, np.array([0.3, 0.1]), np.array([0.1, 0.3]))
    want = [
        [np.mean([0, 1, 4, 5]), np.mean([2, 3, 6, 7])],
        [np.mean([8, 9, 12, 13]), np.mean([10, 11, 14, 15])],
    ]
    np.testing.assert_allclose(out, want)
    # a constant field stays constant on any grid, including non-nesting ones
    g = Grid(100, 36, 101, 37, 0.01)
    lat, lon = native_cells("cmorph", (100.2, 36.2, 100.8, 36.8))
    out = aggregate_mean(np.full((2,) + g.shape, 3.5), g.lat, g.lon, lat, lon)
    np.testing.assert_allclose(out, 3.5)


def test_gaussian_field_and_dem():
    rng = np.random.default_rng(0)
    f = gaussian_field((120, 120), 10.0, rng, n=20)
    assert abs(f.std() - 1) < 0.15 and abs(f.mean()) < 0.3
    # neighbours strongly correlated, far cells not
    near = np.corrcoef(f[:, :, :-1].ravel(), f[:, :, 1:].ravel())[0, 1]
    far = np.corrcoef(f[:, :, :-60].ravel(), f[:, :, 60:].ravel())[0, 1]
    assert near > 0.9 and abs(far) < 0.2
    dem = fractal_dem(Grid(101, 36, 102, 37, 0.01), rng)
    assert dem.shape == (100, 100) and 1500 <= dem.min() < dem.max() < 7000


def test_truth_climate():
    g = Grid(101.0, 36.0, 101.6, 36.6, 0.01)
    days = pd.date_range("2019-01-01", "2019-12-31")
    dem = fractal_dem(g, np.random.default_rng(1))
    truth, _ = synth_truth(g, days, dem, np.random.default_rng(2))
    assert truth.dtype == np.float32 and truth.min() >= 0
    wet = truth > 0.1
    winter = wet[(days.month <= 2) | (days.month == 12)].mean()
    summer = wet[(days.month >= 6) & (days.month <= 8)].mean()
    assert winter < 0.2 < summer
    annual = truth.sum(0)
    assert 150 < annual.mean() < 900
    # orographic enhancement: wetter where higher
    assert np.corrcoef(annual.ravel(), dem.ravel())[0, 1] > 0.2
    # some days are dry over the whole domain, some wet almost everywhere
    frac = wet.mean(axis=(1, 2))
    assert (frac < 0.01).sum() > 30 and frac.max() > 0.5


def test_apply_errors_knobs():
    rng = np.random.default_rng(0)
    x = rng.gamma(0.5, 4.0, (200, 10, 10)).astype("f4")
    x[x < 1.0] = 0
    p = TruthParams()
    np.testing.assert_array_equal(apply_errors(x, SourceErrors(), rng, p), x)
    np.testing.assert_allclose(apply_errors(x, SourceErrors(bias=0.5), rng, p), 1.5 * x, rtol=1e-6)
    spread = apply_errors(x, SourceErrors(timing_spread=0.4), rng, p)
    np.testing.assert_allclose(spread.sum(0), x.sum(0), rtol=1e-5)  # mass is moved, not lost
    assert not np.allclose(spread, x)
    noisy = apply_errors(x, SourceErrors(noise=0.5), rng, p)
    assert abs(noisy.sum() / x.sum() - 1) < 0.05 and ((noisy > 0) == (x > 0)).all()
    missed = apply_errors(x, SourceErrors(miss_rate=1.0), rng, p)
    assert not ((missed > 0) & (missed < p.light_mm)).any()
    assert (missed[x >= p.light_mm] == x[x >= p.light_mm]).all()
    fa = apply_errors(x, SourceErrors(false_alarm_rate=1.0), rng, p)
    assert (fa > 0).all() and (fa[x > 0] == x[x > 0]).all()
    with pytest.raises(ValueError, match="unknown error knob"):
        SourceErrors.from_mapping({"bais": 0.1})


def test_step_weights_sum_to_one():
    days = pd.date_range("2020-07-01", periods=5)
    lat, lon = np.array([36.5, 36.4]), np.array([101.0, 101.1, 101.2])
    params = np.array([[10, 3, 4, -2]] * 5, dtype="f8")
    w = step_weights(days, lat, lon, params)
    assert w.shape == (5, 48, 2, 3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert w[0, :, 0, 0].argmax() != w[0, :, 0, 2].argmax()  # the storm moves


def _cells_inside(lat, lon, grid):
    dlat, dlon = abs(lat[1] - lat[0]), lon[1] - lon[0]
    rows = np.flatnonzero(
        (lat + dlat / 2 <= grid.north + 1e-9) & (lat - dlat / 2 >= grid.south - 1e-9)
    )
    cols = np.flatnonzero(
        (lon - dlon / 2 >= grid.west - 1e-9) & (lon + dlon / 2 <= grid.east + 1e-9)
    )
    return rows, cols, dlat, dlon


def test_zero_error_identity(tmp_path):
    """With every knob at zero, each source's daily total (read back through its reader)
    equals the truth averaged over the source's cell, to float32 precision."""
    grid = Grid(101.0, 36.0, 101.75, 36.5, 0.01)
    sources = {k: {"format": f} for k, f in FORMATS.items()}
    m = synthesize_precip(
        tmp_path,
        grid,
        "2019-12-31",
        "2020-01-02",
        DayWindow(12),
        sources,
        seed=3,
        n_stations=5,
        gauge_noise=0.0,
    )
    truth = np.concatenate(
        [read_netcdf(m["truth"][y], load=True).precip.values for y in sorted(m["truth"])]
    )
    days = pd.date_range("2019-12-31", "2020-01-02")
    assert truth.shape == (3,) + grid.shape and truth.max() > 0
    for name, fmt in FORMATS.items():
        out = READERS[fmt]([tmp_path / "raw" / name], days, DayWindow(12), grid.padded(0.5).bounds)
        assert out.attrs["days_missing"] == 0 and np.isfinite(out.values).all()
        lat, lon = out.lat.values, out.lon.values
        rows, cols, dlat, dlon = _cells_inside(lat, lon, grid)
        assert rows.size and cols.size, name
        for i in rows:
            # a fine centre on a latitude edge belongs to the southern cell (Grid.rowcol)
            mr = (grid.lat > lat[i] - dlat / 2 + 1e-9) & (grid.lat <= lat[i] + dlat / 2 + 1e-9)
            for j in cols:
                mc = (grid.lon >= lon[j] - dlon / 2 - 1e-9) & (grid.lon < lon[j] + dlon / 2 - 1e-9)
                ref = truth[:, mr][:, :, mc].mean(axis=(1, 2))
                np.testing.assert_allclose(
                    out.values[:, i, j], ref, rtol=2e-6, atol=2e-5, err_msg=name
                )
    # gauges: CMA files hold the truth at the station cells (no gauge noise), 0.1 mm units
    from gridfuse.stations.cma import read_cma_daily

    values, stations = read_cma_daily(tmp_path / "raw" / "stations")
    assert len(stations) == 5
    st = stations.set_index("station")
    for sid in values.columns:
        r, c = grid.rowcol(st.loc[sid, "lon"], st.loc[sid, "lat"])
        np.testing.assert_allclose(
            values[sid].values, np.round(truth[:, r[0], c[0]], 1), atol=0.051
        )
    assert Path(m["dem"]).exists()


def test_errors_make_sources_differ(tmp_path):
    grid = Grid(101.0, 36.0, 101.3, 36.3, 0.01)
    base = {"imerg": {"format": "imerg_hhr"}}
    biased = {"imerg": {"format": "imerg_hhr", "errors": {"bias": 0.5}}}
    days = pd.date_range("2020-07-01", "2020-07-02")
    kw = dict(seed=5, n_stations=3, write_gauges=False)
    synthesize_precip(tmp_path / "a", grid, days[0], days[-1], DayWindow(0), base, **kw)
    synthesize_precip(tmp_path / "b", grid, days[0], days[-1], DayWindow(0), biased, **kw)
    bbox = grid.padded(0.5).bounds
    a = READERS["imerg_hhr"]([tmp_path / "a" / "raw" / "imerg"], days, DayWindow(0), bbox)
    b = READERS["imerg_hhr"]([tmp_path / "b" / "raw" / "imerg"], days, DayWindow(0), bbox)
    assert a.values.sum() > 0
    np.testing.assert_allclose(b.values, 1.5 * a.values, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_workflow_synth_and_ingest(tmp_path):
    """synthesize_precip_demo + truth + ingest_<source> for test_precip, in a tmp dir; a
    source that does not cover 2019 yields the absent marker."""
    cfg = yaml.safe_load((ROOT / "configs" / "test.yaml").read_text())
    cfg["products"] = {"test_precip": cfg["products"]["test_precip"]}
    cfg["products"]["test_precip"]["sources"]["gldas"]["first_year"] = 2020
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/test_precip/daily/{s}/{y}.nc" for s in FORMATS for y in (2019, 2020)] + [
        f"results/test_precip/truth/{y}.nc" for y in (2019, 2020)
    ]
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
    cmd = [
        snakemake,
        "-s",
        str(ROOT / "Snakefile"),
        "--configfile",
        "config.yaml",
        "--directory",
        str(tmp_path),
        "--cores",
        "2",
        *targets,
    ]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    r = tmp_path / "results" / "test_precip"
    manifest = json.loads((r / "raw" / "manifest.json").read_text())
    assert manifest["sources"]["imerg"]["n_files"] == 24 * 48
    assert is_absent(r / "daily" / "gldas" / "2019.nc")
    for s in FORMATS:
        ds = read_netcdf(r / "daily" / s / "2020.nc", load=True)
        assert ds.precip.dims == ("time", "lat", "lon") and ds.precip.dtype == np.float32
        assert list(pd.DatetimeIndex(ds.time.values)) == list(
            pd.date_range("2020-01-01", "2020-01-12")
        )
        assert int(ds.attrs["days_missing"]) == 0 and np.isfinite(ds.precip.values).all()
        assert (np.diff(ds.lat.values) < 0).all()
    t = read_netcdf(r / "truth" / "2019.nc", load=True)
    assert t.precip.shape == (12, 30, 30)


def test_template_copies_are_the_same_in_every_run(tmp_path):
    """The demo's IMERG granules are copies of a template whose name the writer records in
    the FileHeader; two writers (two runs) must give the same bytes."""
    from gridfuse.sources import imerg
    from gridfuse.synth.precip import _Template

    lat, lon = np.linspace(36.7, 36.4, 4), np.linspace(101.5, 101.8, 5)
    rate = np.arange(20, dtype="f4").reshape(4, 5)
    blobs = []
    for run in ("a", "b"):
        tpl = _Template(
            lambda p: imerg.write_imerg_hhr(p, "2000-01-01", lat, lon, rate * 0, compress=False),
            ["Grid/precipitation"],
            tmp_path / run,
        )
        tpl.write(tmp_path / run / "g.HDF5", {"Grid/precipitation": rate.T[None]})
        assert [p.name for p in (tmp_path / run).iterdir()] == ["g.HDF5"]  # template removed
        blobs.append((tmp_path / run / "g.HDF5").read_bytes())
    assert blobs[0] == blobs[1]
    # a run killed while the template exists leaves its folder; the next run removes it
    from gridfuse.io import TMP_MARKER, remove_stale_temporaries

    left = tmp_path / "a" / f".template{TMP_MARKER}k1ll3d_"
    (left / "synthetic_template").parent.mkdir()
    (left / "synthetic_template").write_bytes(b"half")
    assert remove_stale_temporaries(tmp_path) == [left]
