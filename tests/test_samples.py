"""Tests of gridfuse.samples: extraction, windows across years, patch files, interpolation scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.grid import Grid
from gridfuse.io import write_absent, write_netcdf
from gridfuse.regrid import Regridder
from gridfuse.samples import (
    STATIC_CHANNELS,
    PatchSampler,
    extract_patches,
    interpolation_scores,
    neighbourhood_means,
    patch_times,
    sources_by_year,
    station_cells,
    target_matrix,
    values_at_pixels,
    window_index,
    window_span,
    write_samples,
)

GRID = Grid(100.0, 30.0, 100.2, 30.16, 0.01)  # 16 x 20 cells
DAYS = pd.date_range("2019-12-29", "2020-01-03", freq="D")
PATCH = 5


def code_field(days, offset=0.0):
    """Values that encode (day, row, col): day-of-period * 10000 + row * 100 + col."""
    t = ((days - DAYS[0]).days.to_numpy())[:, None, None]
    r = np.arange(GRID.nlat)[None, :, None]
    c = np.arange(GRID.nlon)[None, None, :]
    return (t * 10000 + r * 100 + c + offset).astype("f4")


def on_grid(values, days, name="precip"):
    return xr.Dataset(
        {name: (("time", "lat", "lon"), values)},
        coords={"time": days, "lat": GRID.lat, "lon": GRID.lon},
    )


@pytest.fixture
def stations():
    return pd.DataFrame(
        {
            "station": ["A", "B", "C", "D"],
            "lat": [GRID.lat[8], GRID.lat[1], 31.0, GRID.lat[15]],
            "lon": [GRID.lon[10], GRID.lon[0], 100.1, GRID.lon[19]],
            "elevation": [2000.0, 3000.0, 10.0, 2500.0],
            "role": ["train", "evaluation", "train", "train"],
        }
    )


@pytest.fixture
def daily():
    return pd.DataFrame(
        {
            "station": ["A", "A", "B", "C", "A", "Z"],
            "date": pd.to_datetime(
                ["2019-12-31", "2020-01-01", "2020-01-02", "2020-01-01", "2019-12-01", "2020-01-01"]
            ),
            "value": [1.5, 2.5, 7.0, 9.0, 99.0, 5.0],
            "n_valid": [24, 24, 24, 24, 24, 24],
        }
    )


@pytest.fixture
def sample_files(tmp_path, stations, daily):
    """Downscaled files: s1 for both years; s2 absent in 2019 and missing 2020-01-02."""
    d19, d20 = DAYS[DAYS.year == 2019], DAYS[DAYS.year == 2020]
    paths = {
        ("s1", 2019): write_netcdf(on_grid(code_field(d19), d19), tmp_path / "s1" / "2019.nc"),
        ("s1", 2020): write_netcdf(on_grid(code_field(d20), d20), tmp_path / "s1" / "2020.nc"),
        ("s2", 2019): write_absent(tmp_path / "s2" / "2019.nc", source="s2", year=2019, reason="x"),
    }
    keep = d20[d20 != pd.Timestamp("2020-01-02")]
    paths[("s2", 2020)] = write_netcdf(
        on_grid(code_field(keep, 0.5), keep), tmp_path / "s2" / "2020.nc"
    )
    elev = (np.arange(GRID.nlat)[:, None] * 10 + np.arange(GRID.nlon)[None, :]).astype("f4")
    static = xr.Dataset({"elevation": (("lat", "lon"), elev)}, coords=GRID.coords())
    srcs = sources_by_year([str(p) for p in paths.values()], ["s1", "s2"], [2019, 2020])
    points = write_samples(
        tmp_path / "samples" / "patches.nc",
        tmp_path / "samples" / "points.parquet",
        grid=GRID,
        sources=srcs,
        static=static,
        stations=stations,
        daily=daily,
        start="2019-12-29",
        end="2020-01-03",
        patch=PATCH,
        window_days=5,
        time_block=2,
    )
    ds = xr.open_dataset(tmp_path / "samples" / "patches.nc").load()
    return ds, points, pd.read_parquet(tmp_path / "samples" / "points.parquet")


# ----------------------------------------------------------------------------- extraction
def test_station_cells_drop_outside(stations):
    st = station_cells(GRID, stations)
    assert st["station"].tolist() == ["A", "B", "D"]
    assert st[["row", "col"]].to_numpy().tolist() == [[8, 10], [1, 0], [15, 19]]
    keep = station_cells(GRID, stations, drop_outside=False)
    assert keep.loc[2, ["row", "col"]].tolist() == [-1, -1]


def test_values_patches_and_neighbourhood_means():
    f = code_field(DAYS[:2])
    rows, cols = np.array([8, 0]), np.array([10, 19])
    np.testing.assert_array_equal(values_at_pixels(f, rows, cols), f[:, rows, cols])
    p = extract_patches(f, rows, cols, 3)
    assert p.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(p[:, 0], f[:, 7:10, 9:12])
    # the corner cell (0, 19): its north row and east column lie outside the grid
    assert np.isnan(p[:, 1, 0]).all() and np.isnan(p[:, 1, :, 2]).all()
    np.testing.assert_array_equal(p[:, 1, 1:, :2], f[:, 0:2, 18:20])
    # 3 x 3 mean: interior = centre value (the code field is linear); corner = mean of 4
    m = neighbourhood_means(f, rows, cols, 3)
    np.testing.assert_allclose(m[:, 0], f[:, 8, 10])
    np.testing.assert_allclose(m[:, 1], f[:, 0:2, 18:20].mean(axis=(1, 2)))
    g = f.copy()
    g[:, 8, 10] = np.nan
    np.testing.assert_allclose(
        neighbourhood_means(g, rows[:1], cols[:1], 3)[:, 0],
        np.nanmean(g[:, 7:10, 9:12], axis=(1, 2)),
    )
    np.testing.assert_array_equal(neighbourhood_means(f, rows, cols, 1), f[:, rows, cols])
    with pytest.raises(ValueError, match="outside the field"):
        values_at_pixels(f, [16], [0])
    with pytest.raises(ValueError, match="odd"):
        extract_patches(f, rows, cols, 4)


def test_window_index_clips_and_flags():
    idx, valid = window_index([0, 5], 5, 6)
    assert idx.tolist() == [[0, 0, 0, 1, 2], [3, 4, 5, 5, 5]]
    assert valid.tolist() == [[False, False, True, True, True], [True, True, True, False, False]]


def test_target_matrix(daily):
    y = target_matrix(daily, ["B", "A"], DAYS)
    assert y.shape == (2, len(DAYS))
    assert y[1, 2] == 1.5 and y[1, 3] == 2.5 and y[0, 4] == 7.0
    assert np.isfinite(y).sum() == 3  # 2019-12-01 and stations C, Z are not in the matrix


# ----------------------------------------------------------------------------- patch files
def test_patch_file_layout_and_values(sample_files):
    ds, _, _ = sample_files
    assert ds["x"].dims == ("station", "time", "py", "px", "channel")
    assert ds["station"].values.tolist() == ["A", "B", "D"]  # C lies outside the grid
    assert ds["channel"].values.tolist() == ["s1", "s2", "elevation", "lat", "lon"]
    assert ds["role"].values.tolist() == ["train", "evaluation", "train"]
    assert ds["row"].values.tolist() == [8, 1, 15] and ds["col"].values.tolist() == [10, 0, 19]
    np.testing.assert_array_equal(ds["time"].values, DAYS.values)
    x = ds["x"].values
    r = PATCH // 2
    full = code_field(DAYS)
    # station A (interior): every day, both years, the window around its cell
    np.testing.assert_array_equal(x[0, :, :, :, 0], full[:, 6:11, 8:13])
    # s2: absent in 2019 -> NaN; 2020-01-02 missing from its file -> NaN
    assert np.isnan(x[:, :3, :, :, 1]).all()
    assert np.isnan(x[:, 4, :, :, 1]).all()
    np.testing.assert_array_equal(x[0, 3, :, :, 1], full[3, 6:11, 8:13] + 0.5)
    # static channels constant in time; lat/lon are cell centres
    np.testing.assert_array_equal(x[0, :, r, r, 2], 8 * 10 + 10)
    np.testing.assert_array_equal(x[0, 0, :, r, 3], GRID.lat[6:11].astype("f4"))
    np.testing.assert_array_equal(x[0, 0, r, :, 4], GRID.lon[8:13].astype("f4"))
    # station B at (1, 0): window rows -1..3, cols -2..2 -> NaN outside, every channel
    b = x[1]
    assert np.isnan(b[:, 0]).all() and np.isnan(b[:, :, :2]).all()
    np.testing.assert_array_equal(b[:, 1:, 2:, 0], full[:, 0:4, 0:3])
    # station D at the south-east corner
    assert np.isnan(x[2, :, r + 1 :]).all() and np.isnan(x[2, :, :, r + 1 :]).all()
    # targets: role and gauge value of the right station-day
    y = ds["y"].values
    assert y[0, 2] == 1.5 and y[0, 3] == 2.5 and y[1, 4] == 7.0
    assert np.isfinite(y).sum() == 3
    assert ds.attrs["patch"] == PATCH and ds.attrs["window_days"] == 5


def test_window_crosses_the_year_boundary(sample_files):
    ds, _, _ = sample_files
    ps = PatchSampler.from_dataset(ds)
    assert ps.window == 5
    t = int(np.flatnonzero(DAYS == pd.Timestamp("2020-01-01"))[0])
    cube = ps.cube(0, t)
    assert cube.shape == (5, PATCH, PATCH, 5)
    # days 2019-12-30 .. 2020-01-03, read from the 2019 and the 2020 files
    centre = cube[:, PATCH // 2, PATCH // 2, 0]
    np.testing.assert_array_equal(centre, (np.arange(1, 6) * 10000 + 8 * 100 + 10).astype("f4"))
    # a window reaching before the first product day is NaN there
    first = ps.cube(0, 0)
    assert np.isnan(first[:2]).all() and np.isfinite(first[2:, :, :, 0]).all()
    # the batch gather equals the single cubes
    s, tt = ps.indices()
    assert list(zip(s.tolist(), tt.tolist())) == [(0, 2), (0, 3), (1, 4)]
    xb, yb = ps.batch(s, tt)
    for k in range(len(s)):
        np.testing.assert_array_equal(xb[k], ps.cube(s[k], tt[k]))
    np.testing.assert_array_equal(yb, [1.5, 2.5, 7.0])
    s_ev, t_ev = ps.indices(roles=["evaluation"])
    assert s_ev.tolist() == [1] and t_ev.tolist() == [4]
    s_fw, _ = ps.indices(require_target=False, full_window=True)
    assert len(s_fw) == 3 * 2  # days 2 and 3 of 6 have a full 5-day window
    # a network's inputs: its sources, then the static channels present
    src = ps.channels[0]
    x, channels = ps.source_inputs([src])
    assert channels[0] == src and all(c in STATIC_CHANNELS for c in channels[1:])
    np.testing.assert_array_equal(x[..., 0], ps.x[..., 0])
    with pytest.raises(ValueError, match="no channel .'nosuch'"):
        ps.source_inputs(["nosuch"])


def test_a_window_span_gives_its_days_the_cubes_of_the_whole_file(sample_files, tmp_path):
    """Days 2..3 of 6 with 5-day windows: the slice 0..5 (clipped at the start); a sampler
    opened on it reads only those days, and their cubes are the whole file's."""
    assert window_span([2, 3], 5, 6) == slice(0, 6)
    assert window_span([3], 3, 6) == slice(2, 5)
    assert window_span([5, 4], 1, 6) == slice(4, 6)
    with pytest.raises(ValueError, match="outside a time axis"):
        window_span([6], 3, 6)
    with pytest.raises(ValueError, match="no days"):
        window_span([], 3, 6)
    path = tmp_path / "samples" / "patches.nc"
    np.testing.assert_array_equal(patch_times(path), DAYS)
    whole = PatchSampler.from_dataset(sample_files[0], window=3)
    span = window_span([4], 3, len(DAYS))
    part = PatchSampler.open(path, window=3, time=span)
    np.testing.assert_array_equal(part.times, DAYS[3:6])
    assert part.x.shape[1] == 3
    np.testing.assert_array_equal(part.y, whole.y[:, 3:6])
    for s in range(3):
        np.testing.assert_array_equal(part.cube(s, 1), whole.cube(s, 4))
    np.testing.assert_array_equal(part.geo()["cell_lat"], whole.geo()["cell_lat"])


def test_gridded_values_at_the_stations_cells(sample_files, tmp_path):
    """A yearly file's values at each station's cell; days it lacks stay NaN."""
    ps = PatchSampler.from_dataset(sample_files[0])
    assert ps.rows.tolist() == [8, 1, 15] and ps.cols.tolist() == [10, 0, 19]
    v = ps.at_cells([tmp_path / "s2" / "2020.nc"])
    assert v.shape == ps.y.shape
    full = code_field(DAYS, 0.5)
    for t in (3, 5):  # 2020-01-01, 2020-01-03
        np.testing.assert_array_equal(v[:, t], full[t, [8, 1, 15], [10, 0, 19]])
    assert np.isnan(v[:, :3]).all() and np.isnan(v[:, 4]).all()  # 2019, 2020-01-02


def test_points_equal_patch_centres(sample_files):
    ds, returned, points = sample_files
    pd.testing.assert_frame_equal(returned, points)
    assert len(points) == 3 * len(DAYS)
    assert list(points.columns) == [
        "station",
        "date",
        "role",
        "target",
        "s1",
        "s2",
        "elevation",
        "lat",
        "lon",
        "row",
        "col",
    ]
    r = PATCH // 2
    x = ds["x"].values
    for (s, station), role in zip(enumerate(ds["station"].values), ds["role"].values):
        rows = points[points["station"] == station].sort_values("date")
        np.testing.assert_array_equal(rows["date"], DAYS.values)
        assert (rows["role"] == role).all()
        for c, ch in enumerate(ds["channel"].values):
            np.testing.assert_array_equal(rows[ch].to_numpy(), x[s, :, r, r, c])
        np.testing.assert_array_equal(rows["target"].to_numpy(), ds["y"].values[s])
    a = points[points["station"] == "A"].iloc[0]
    assert a["lat"] == np.float32(GRID.lat[8]) and a["lon"] == np.float32(GRID.lon[10])


# ----------------------------------------------------------------------------- interpolation
def test_interpolation_scores_known_answers(tmp_path, stations):
    lat = 30.4 - (np.arange(8) + 0.5) * 0.1  # a 0.1 deg native grid around GRID
    lon = 99.8 + (np.arange(8) + 0.5) * 0.1
    rng = np.random.default_rng(0)
    days = pd.date_range("2019-12-30", "2020-01-02", freq="D")
    level = rng.gamma(1.0, 3.0, len(days)).astype("f4")
    flat = np.broadcast_to(level[:, None, None], (len(days), 8, 8)).copy()
    noisy = rng.gamma(1.0, 3.0, (len(days), 8, 8)).astype("f4")

    def native(values, d, name):
        ds = xr.Dataset(
            {"precip": (("time", "lat", "lon"), values)},
            coords={"time": d, "lat": lat, "lon": lon},
        )
        return write_netcdf(ds, tmp_path / name)

    y19 = days.year == 2019
    paths = {
        "flat": [
            native(flat[y19], days[y19], "flat19.nc"),
            native(flat[~y19], days[~y19], "flat20.nc"),
        ],
        "noisy": [
            write_absent(tmp_path / "n19.nc", source="noisy", year=2019, reason="x"),
            native(noisy[~y19], days[~y19], "noisy20.nc"),
        ],
    }
    st = station_cells(GRID, stations)
    obs = pd.DataFrame(
        [(s, d, float(level[i]) + 1.0) for s in st["station"] for i, d in enumerate(days)],
        columns=["station", "date", "value"],
    )
    scores = interpolation_scores(paths, stations, obs, GRID, ["nearest", "bilinear", "cubic"])
    assert list(scores.columns) == ["source", "method", "metric", "value", "n"]
    assert len(scores) == 2 * 3 * 4
    flat_s = scores[scores["source"] == "flat"].set_index(["method", "metric"])["value"]
    for m in ("nearest", "bilinear", "cubic"):
        # the source is the observation minus 1 everywhere
        assert flat_s[(m, "rmse")] == pytest.approx(1.0, abs=1e-5)
        assert flat_s[(m, "mae")] == pytest.approx(1.0, abs=1e-5)
        assert flat_s[(m, "cc")] == pytest.approx(1.0, abs=1e-6)
        expect_rb = -100.0 * len(days) / (level.sum() + len(days))
        assert flat_s[(m, "rb")] == pytest.approx(expect_rb, rel=1e-5)
    assert (scores.loc[scores["source"] == "flat", "n"] == 3 * len(days)).all()
    # the noisy source only in 2020 (2019 absent): cross-check against a full regrid
    noisy_s = scores[scores["source"] == "noisy"].set_index(["method", "metric"])
    assert (noisy_s["n"] == 3 * 2).all()
    for m in ("nearest", "cubic"):
        full = Regridder(lat, lon, GRID, m)(noisy[~y19])
        pred = values_at_pixels(full, st["row"], st["col"])
        o = target_matrix(obs, st["station"], days[~y19]).T
        assert noisy_s.loc[(m, "rmse"), "value"] == pytest.approx(
            np.sqrt(np.mean((pred - o) ** 2)), rel=1e-5
        )
        assert noisy_s.loc[(m, "mae"), "value"] == pytest.approx(
            np.mean(np.abs(pred - o)), rel=1e-5
        )


# ----------------------------------------------------------------------------- workflow
@pytest.mark.slow
def test_downscale_compare_and_samples_rules(tmp_path):
    """downscale (nearest, and absent stays absent), compare_interpolation_precip and samples_precip
    end to end on hand-written daily/station/static inputs (upstream rules not run)."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from gridfuse.io import is_absent, read_netcdf

    root = Path(__file__).resolve().parents[1]
    grid = Grid(101.5, 36.4, 101.6, 36.5, 0.01)
    for d in ("raw_era5", "raw_gsmap", "raw_stations"):
        (tmp_path / d).mkdir()
    cfg = {
        "products": {
            "wf_precip": {
                "kind": "precip",
                "grid": dict(zip(("west", "south", "east", "north", "res"), grid.bounds + (0.01,))),
                "period": {"start": "2019-12-30", "end": "2020-01-02"},
                "sources": {
                    "era5": {"format": "era5", "path": str(tmp_path / "raw_era5")},
                    "gsmap": {"format": "gsmap_hourly", "path": str(tmp_path / "raw_gsmap")},
                },
                "stations": {"format": "cma_daily", "path": str(tmp_path / "raw_stations")},
                "samples": {"patch": 3, "window_days": 3},
            }
        }
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = tmp_path / "results" / "wf_precip"
    lat = 36.6 - (np.arange(4) + 0.5) * 0.1
    lon = 101.4 + (np.arange(4) + 0.5) * 0.1
    rng = np.random.default_rng(1)
    for year, days in ((2019, DAYS[1:3]), (2020, DAYS[3:5])):
        ds = xr.Dataset(
            {"precip": (("time", "lat", "lon"), rng.gamma(1, 2, (2, 4, 4)).astype("f4"))},
            coords={"time": days, "lat": lat, "lon": lon},
        )
        write_netcdf(ds, res / "daily" / "era5" / f"{year}.nc")
    write_absent(res / "daily" / "gsmap" / "2019.nc", source="gsmap", year=2019, reason="test")
    write_netcdf(ds, res / "daily" / "gsmap" / "2020.nc")
    (res / "stations").mkdir(parents=True)
    pd.DataFrame(
        {
            "station": ["1", "2"],
            "lat": [36.455, 36.405],
            "lon": [101.555, 101.505],
            "elevation": [1.0, 2.0],
            "role": ["train", "evaluation"],
        }
    ).to_csv(res / "stations" / "stations.csv", index=False)
    pd.DataFrame(
        {"station": ["1", "2"], "date": DAYS[[2, 3]], "value": [1.0, 2.0], "n_valid": [1, 1]}
    ).to_parquet(res / "stations" / "daily.parquet")
    for name in ("qc.csv",):
        (res / "stations" / name).write_text("check,station,n,detail\n")
    static = xr.Dataset({"elevation": (("lat", "lon"), np.ones(grid.shape, "f4"))}, grid.coords())
    write_netcdf(static, res / "static.nc")
    targets = [
        "results/wf_precip/samples/points.parquet",
        "results/wf_precip/evaluation/interpolation.csv",
    ]
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "--cores",
        "2",
        "-s",
        str(root / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "cfg.yaml"),
        "--allowed-rules",
        "downscale",
        "compare_interpolation_precip",
        "samples_precip",
        "--",
        *targets,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert is_absent(res / "downscaled" / "gsmap" / "2019.nc")
    with read_netcdf(res / "downscaled" / "era5" / "2020.nc") as fine:
        assert fine["precip"].shape == (2,) + grid.shape
        assert fine.attrs["regrid_method"] == "nearest"
        expect = Regridder(lat, lon, grid, "nearest")(ds["precip"].values)
        np.testing.assert_array_equal(fine["precip"].values, expect)
    scores = pd.read_csv(res / "evaluation" / "interpolation.csv")
    assert set(scores["method"]) == {"nearest", "bilinear", "cubic"}
    assert set(scores["source"]) == {"era5", "gsmap"}
    assert (scores.loc[scores["source"] == "era5", "n"] == 2).all()
    assert (scores.loc[scores["source"] == "gsmap", "n"] == 1).all()
    with xr.open_dataset(res / "samples" / "patches.nc") as p:
        assert p["x"].shape == (2, 4, 3, 3, 5)
        assert np.isnan(p["x"].values[:, :2, :, :, 1]).all()  # gsmap absent in 2019
        assert p["role"].values.tolist() == ["train", "evaluation"]


# ----------------------------------------------------------------------------- real data
def test_interpolation_scores_on_real_gauges(realdata):
    """CHIRPS and PERSIANN-CDR (0.05 deg, Valparaiso 1983) against the 34 real gauges:
    nearest scores equal a direct comparison of the native cell containing each gauge."""
    from gridfuse import metrics

    folder = realdata / "rfmerge_valparaiso" / "converted"
    gis = pd.read_csv(folder / "ValparaisoPPgis.csv")
    stations = pd.DataFrame(
        {"station": gis["Code"], "lat": gis["lat"], "lon": gis["lon"], "role": "train"}
    )
    wide = pd.read_csv(folder / "ValparaisoPPts.csv", parse_dates=["date"])
    daily = wide.melt(id_vars="date", var_name="station", value_name="value").dropna()
    grid = Grid(-71.8, -34.0, -70.0, -32.0, 0.01)
    files = {"chirps": [folder / "CHIRPS5km.nc"], "persiann": [folder / "PERSIANNcdr5km.nc"]}
    scores = interpolation_scores(files, stations, daily, grid, ["nearest", "bilinear", "cubic"])
    assert len(scores) == 2 * 3 * 4 and scores["value"].notna().all()
    s = scores.set_index(["source", "method", "metric"])
    assert 0.3 < s.loc[("chirps", "nearest", "cc"), "value"] < 1.0
    # direct: the native 0.05 deg cell containing each gauge, except gauges so close to a
    # native cell edge that their 0.01 deg cell's centre lies in the neighbouring cell
    with xr.open_dataset(folder / "CHIRPS5km.nc") as ds:
        native = Grid.from_coords(ds["lat"].values, ds["lon"].values)
        r, c = native.rowcol(stations["lon"], stations["lat"])
        fr, fc = grid.rowcol(stations["lon"], stations["lat"])
        same = (native.rowcol(grid.lon[fc], grid.lat[fr])[0] == r) & (
            native.rowcol(grid.lon[fc], grid.lat[fr])[1] == c
        )
        assert same.mean() > 0.7
        pred = ds["precip"].values[:, r, c]
        days = pd.DatetimeIndex(ds["time"].values)
    sub = stations[same]
    obs = target_matrix(daily, sub["station"], days).T
    direct = interpolation_scores({"chirps": files["chirps"]}, sub, daily, grid, ["nearest"])
    direct = direct.set_index("metric")
    for name in ("rmse", "mae", "cc", "rb"):
        np.testing.assert_allclose(
            direct.loc[name, "value"], getattr(metrics, name)(obs, pred[:, same]), rtol=1e-6
        )
    assert direct.loc["rmse", "n"] == int(metrics.n_valid(obs, pred[:, same])) > 1000
