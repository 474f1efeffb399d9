"""SO2 OSSE: world, truth, swaths, stations, the full synthesizer, and a workflow run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gridfuse.daily import DayWindow
from gridfuse.grid import Grid
from gridfuse.io import read_netcdf
from gridfuse.sources import tropomi as tr
from gridfuse.stations.cnemc import read_station_list
from gridfuse.synth import so2

ROOT = Path(__file__).resolve().parents[1]
GRID = Grid(112.3, 37.6, 112.6, 37.9, 0.01)  # 30 x 30


@pytest.fixture(scope="module")
def world():
    return so2.make_world(GRID, np.random.default_rng(3), n_cities=2, n_point_sources=3)


def test_world_layers(world):
    assert world.dem.shape == GRID.shape
    assert len(world.cities) == 2 and len(world.points) == 3
    # cities are population maxima and roads run through them
    big = world.cities.iloc[0]
    assert world.population[big.row, big.col] > 0.8 * world.population.max()
    assert world.population[big.row, big.col] > 10 * world.population.min()
    assert world.road_density.max() > 0.5
    assert set(np.unique(world.landcover)) <= {5.0, 10.0, 12.0, 13.0, 16.0}
    assert (world.landcover[world.population > 1500] == 13).all()
    # the ERA5 grid around the domain, with its orography
    assert world.era_lat[0] > GRID.north + 0.5 and world.era_lat[-1] < GRID.south - 0.5
    assert np.allclose(np.diff(world.era_lon), 0.25)
    assert world.era_dem.shape == (world.era_lat.size, world.era_lon.size)


def test_kernel_points_downwind():
    k = so2._kernel(GRID, 3.0, 0.0, 10)  # wind from the west, blowing east
    assert k.sum() == pytest.approx(1.0)
    cols = np.arange(-10, 11)
    centre_of_mass = (k.sum(0) * cols).sum()
    assert centre_of_mass > 1.0  # shifted east
    k0 = so2._kernel(GRID, 0.0, 0.0, 10)
    assert abs((k0.sum(0) * cols).sum()) < 1e-9


def test_in_season_wraps_new_year():
    days = pd.DatetimeIndex(["2018-01-10", "2018-04-15", "2018-04-16", "2018-10-14", "2018-10-15"])
    np.testing.assert_array_equal(
        so2._in_season(days, "10-15", "04-15"), [True, True, False, False, True]
    )


def test_truth_responds_to_meteorology(world):
    days = pd.date_range("2018-08-01", periods=4)
    shape = (4,) + GRID.shape

    def met(blh, tp):
        return xr.Dataset(
            {
                "blh": (("time", "lat", "lon"), np.full(shape, blh)),
                "ws": (("time", "lat", "lon"), np.full(shape, 2.5)),
                "rh": (("time", "lat", "lon"), np.full(shape, 50.0)),
                "tp": (("time", "lat", "lon"), np.full(shape, tp)),
            }
        )

    wind = (np.ones(4), np.zeros(4))
    knobs = so2.SO2Knobs()
    base = so2.truth_so2(world, met(800.0, 0.0), wind, days, knobs, np.random.default_rng(0))
    low = so2.truth_so2(world, met(400.0, 0.0), wind, days, knobs, np.random.default_rng(0))
    wet = so2.truth_so2(world, met(800.0, 20.0), wind, days, knobs, np.random.default_rng(0))
    assert (base > 0).all()
    assert low.mean() > 1.4 * base.mean()  # shallower boundary layer, higher concentrations
    assert wet.mean() < base.mean()  # wet removal
    # cities are hotter than the countryside
    c = world.cities.iloc[0]
    assert base[:, c.row, c.col].mean() > 2 * np.percentile(base, 5)


def test_orbit_pixels_cover_domain():
    lon_b, lat_b, _ = so2._orbit_pixels(GRID, 0.0, 5.5)
    assert lon_b.shape[-1] == 4
    a = tr.pixel_areas_km2(lon_b.reshape(-1, 4), lat_b.reshape(-1, 4))
    # near nadir: about 3.5 km x 5.5 km
    assert np.median(a) == pytest.approx(3.5 * 5.5, rel=0.1)
    # every cell of the domain is covered by some pixel
    w, _, n = tr.bin_pixels(np.ones(a.size), lon_b.reshape(-1, 4), lat_b.reshape(-1, 4), GRID)
    assert (n > 0).all()
    edge = so2._orbit_pixels(GRID, 1200.0, 5.5)[0]
    a_edge = tr.pixel_areas_km2(
        edge.reshape(-1, 4), so2._orbit_pixels(GRID, 1200.0, 5.5)[1].reshape(-1, 4)
    )
    assert np.median(a_edge) > 2 * np.median(a)  # wider pixels towards the swath edge


def test_station_hourly_unit_change_and_gaps(world):
    days = pd.date_range("2018-08-30", "2018-09-02")
    truth = np.full((len(days),) + GRID.shape, 20.0, dtype="f4")
    st = so2.station_network(world, 6, np.random.default_rng(1))
    assert st["station"].tolist() == [f"{1001 + i}A" for i in range(6)]
    assert GRID.contains(st["lon"], st["lat"]).all()
    knobs = so2.SO2Knobs(station_noise=0.0, missing_hours=0.1)
    h = so2.station_hourly(truth, days, st, DayWindow(16), knobs, np.random.default_rng(2))
    assert set(h["type"]) == {"SO2", "SO2_24h"}
    s = h[h["type"] == "SO2"]
    assert len(s) == len(days) * 24 * 6
    # Beijing-time hour ends: 2018-08-30 01:00 .. 2018-09-03 00:00
    assert s["time"].min() == pd.Timestamp("2018-08-30 01:00")
    assert s["time"].max() == pd.Timestamp("2018-09-03 00:00")
    frac_missing = s["value"].isna().mean()
    assert 0.05 < frac_missing < 0.2
    daily = s.groupby(s["time"].dt.date.where(s["time"].dt.hour > 0))["value"].mean()
    before = s[s["time"] < "2018-09-01"]["value"].mean()
    after = s[s["time"] >= "2018-09-01 01:00"]["value"].mean()
    # reported at 273 K before the change: x 298/273 (within the representativeness spread)
    assert before / after == pytest.approx(298 / 273, rel=0.02)
    assert len(daily) > 0


def test_station_network_kinds_and_shares(world):
    st = so2.station_network(world, 20, np.random.default_rng(4), 0.25, 0.1)
    assert st["kind"].value_counts().to_dict() == {"city": 13, "background": 5, "town": 2}
    assert (st["reference"] == np.where(st["kind"] == "background", "Y", "N")).all()
    assert st["station"].is_unique and st["name"].is_unique
    assert GRID.contains(st["lon"], st["lat"]).all()
    r, c = GRID.rowcol(st["lon"].to_numpy(), st["lat"].to_numpy())
    np.testing.assert_array_equal(r, st["row"])
    np.testing.assert_array_equal(c, st["col"])
    assert set(st["city"]) <= set(world.cities["name"])
    # no shares: every site in a city (the former network)
    only = so2.station_network(world, 7, np.random.default_rng(4))
    assert (only["kind"] == "city").all() and (only["reference"] == "N").all()
    # at least one city site is kept; shares beyond 1 are refused
    assert so2._split_counts(3, 0.6, 0.3) == (1, 0, 2)
    assert so2._split_counts(60, 0.25, 0.1) == (39, 6, 15)
    with pytest.raises(ValueError, match="below 1"):
        so2.station_network(world, 10, np.random.default_rng(0), 0.7, 0.3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        so2.station_network(world, 10, np.random.default_rng(0), -0.1, 0.0)


def test_background_sites_sit_in_clean_countryside():
    g = Grid(112.0, 37.4, 112.8, 38.2, 0.01)  # 80 x 80
    w = so2.make_world(g, np.random.default_rng(11), n_cities=3, n_point_sources=6)
    st = so2.station_network(w, 40, np.random.default_rng(12), 0.25, 0.1)
    kx, ky = so2._km_axes(g)

    def km_to(rows, cols, places):
        return np.min(
            [np.hypot((rows - p.row) * ky, (cols - p.col) * kx) for p in places.itertuples()],
            axis=0,
        )

    by = {k: s for k, s in st.groupby("kind")}
    bg, city, town = by["background"], by["city"], by["town"]
    assert len(bg) == 10 and len(town) == 4
    sigma = w.cities["sigma_km"].max()
    # background sites: beyond the city cores and several km from every point source
    assert km_to(bg["row"], bg["col"], w.cities).min() > 2 * sigma
    assert km_to(bg["row"], bg["col"], w.points).min() > 5.0
    assert (
        km_to(city["row"], city["col"], w.cities).max()
        < km_to(bg["row"], bg["col"], w.cities).min()
    )
    pop = w.population
    assert pop[bg["row"], bg["col"]].max() < np.median(pop[city["row"], city["col"]])
    assert np.median(pop[bg["row"], bg["col"]]) <= np.median(pop)
    # county towns: more people than the countryside around them, fewer than the cities
    assert np.median(pop[bg["row"], bg["col"]]) < np.median(pop[town["row"], town["col"]])
    assert np.median(pop[town["row"], town["col"]]) < np.median(pop[city["row"], city["col"]])
    # spread over the domain, not bunched: background sites span most of it both ways
    assert np.ptp(bg["row"]) > 0.4 * g.nlat and np.ptp(bg["col"]) > 0.4 * g.nlon


def test_synthesize_small_world(tmp_path):
    knobs = so2.SO2Knobs(n_stations=8, n_cities=2, n_point_sources=2, tropomi_start="2018-07-02")
    m = so2.synthesize_so2(
        GRID, "2018-06-29", "2018-07-04", 16, tmp_path, knobs, seed=5, product="t"
    )
    raw = tmp_path / "raw"
    assert json.loads((raw / "manifest.json").read_text())["sources"] == m["sources"]
    orbits = m["sources"]["tropomi"]["2018"]
    assert len(orbits) == 3  # 07-02 .. 07-04, none before tropomi_start
    pix = tr.read_l2(raw / orbits[0])
    assert pix.size > 0 and pix.counts["qa"] > 0
    assert sorted(m["sources"]["era5_met"]["2018"]) == [
        "era5_met/era5_met_201806.zip",
        "era5_met/era5_met_201807.zip",
    ]
    for layer in ("dem", "landcover", "ndvi", "population", "road_density"):
        assert (raw / "static" / f"{layer}.tif").exists()
    listed = read_station_list(raw / "stations" / "station_list.csv")
    assert len(listed) == 8
    n_bg = round(knobs.background_share * 8)
    assert n_bg > 0 and (listed["reference"] == "Y").sum() == n_bg
    kinds = {d["station"]: d["kind"] for d in m["stations"]["stations"]}
    ref = listed.set_index("station")["reference"]
    assert all((ref[k] == "Y") == (v == "background") for k, v in kinds.items())
    assert len(list((raw / "stations").glob("china_sites_*.csv"))) == 7  # 06-29 .. 07-05 00:00
    truth = xr.open_dataset(raw / "truth" / "2018.nc")
    assert truth.so2.shape == (6,) + GRID.shape and truth.so2.attrs["units"] == "ug m-3"
    # same seed, same world
    m2 = so2.synthesize_so2(
        GRID, "2018-06-29", "2018-07-04", 16, tmp_path / "again", knobs, seed=5, product="t"
    )
    assert m2["world"] == m["world"]
    t2 = xr.open_dataset(tmp_path / "again" / "raw" / "truth" / "2018.nc")
    np.testing.assert_array_equal(truth.so2.values, t2.so2.values)


@pytest.mark.slow
def test_workflow_synth_ingest_static(tmp_path):
    """synthesize_so2_demo + ingest_tropomi + ingest_era5_met + build_static on test_so2."""
    cfg = tmp_path / "test.yaml"
    shutil.copy(ROOT / "configs" / "test.yaml", cfg)
    targets = [
        "results/test_so2/static.nc",
        "results/test_so2/daily/tropomi/2018.nc",
        "results/test_so2/daily/era5_met/2018.nc",
        "results/test_so2/truth/2018.nc",
    ]
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    out = subprocess.run(
        [
            snakemake,
            "-s",
            str(ROOT / "Snakefile"),
            "--configfile",
            str(cfg),
            "--directory",
            str(tmp_path),
            "--cores",
            "2",
            *targets,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    res = tmp_path / "results" / "test_so2"
    col = read_netcdf(res / "daily" / "tropomi" / "2018.nc")  # crs, time_bnds as coords
    assert set(col.data_vars) == {"so2_column", "n_pixels"}
    assert col.so2_column.attrs["units"] == "mol m-2"
    assert col.sizes["time"] == 24 and col.lat.values[0] > col.lat.values[-1]
    assert np.isfinite(col.so2_column).any()
    met = read_netcdf(res / "daily" / "era5_met" / "2018.nc")
    assert {"t2m", "d2m", "rh", "blh", "sp", "u10", "v10", "ws", "wd", "tp"} <= set(met.data_vars)
    assert met.attrs["days_missing"] == 0 and np.isfinite(met.t2m).all()
    static = read_netcdf(res / "static.nc")
    assert list(static.data_vars) == [
        "elevation",
        "slope",
        "landcover",
        "ndvi",
        "population",
        "road_density",
    ]
    truth = xr.open_dataset(res / "truth" / "2018.nc").so2
    # the satellite column tracks the truth: correlation over covered cell-days
    g = tr.native_grid(
        Grid.from_config({"west": 112.3, "south": 37.6, "east": 112.7, "north": 38.0, "res": 0.01}),
        0.05,
        0.0,
    )
    coarse = truth.coarsen(lat=5, lon=5).mean().values
    c = col.so2_column.sel(lat=slice(g.north, g.south), lon=slice(g.west, g.east)).values
    ok = np.isfinite(c)
    assert ok.sum() > 50
    assert np.corrcoef(c[ok], coarse[ok])[0, 1] > 0.5


def _spread_pick_reference(cand, k, min_sep, rng):
    """The greedy rule written plainly: candidates in random order, each kept when it is at
    least the separation from every earlier pick; the separation halves until k fit."""
    chosen = []
    sep = float(min_sep)
    while len(chosen) < k:
        for i in rng.permutation(len(cand)):
            if len(chosen) == k:
                break
            if all(np.hypot(*(cand[i] - q)) >= max(sep, 1.0) for q in chosen):
                chosen.append(cand[i])
        if sep < 1.0:
            while len(chosen) < k:
                chosen.append(cand[rng.integers(len(cand))])
        sep /= 2
    return chosen


@pytest.mark.parametrize(
    "n_cand, k, sep", [(5000, 40, 12.0), (3000, 400, 30.0), (50, 80, 4.0), (1, 3, 2.0)]
)
def test_spread_pick_is_the_plain_greedy_rule(n_cand, k, sep):
    """The raster-blocking pick equals the plain loop (same rng draws, same cells), also when
    the separation must halve and when cells are reused."""
    rng = np.random.default_rng(n_cand)
    cand = np.unique(rng.integers(0, 300, size=(n_cand, 2)), axis=0)
    got = so2._spread_pick(cand, k, sep, np.random.default_rng(7))
    ref = _spread_pick_reference(cand, k, sep, np.random.default_rng(7))
    assert len(got) == len(ref) == k
    np.testing.assert_array_equal(np.array(got), np.array(ref))
