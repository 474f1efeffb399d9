"""SO2 OSSE: a synthetic surface-SO2 world and every input derived from it, in real formats.

The world (on the product's target grid) has cities (population), roads (lines between and
inside cities) and industrial point sources at fixed places, over a plausible terrain with
land cover and NDVI.  Hourly ERA5-like meteorology is synthesized on the ERA5 0.25 deg grid.

Truth (``so2``, ug/m3 at 298 K, per product day)::

    C = background * h^0.3 * D^0.3 + D * W * S * (K_d * E_d)

* ``E_d``: emissions of the day: population (area sources, raised in the heating season and
  lowered at weekends), road density (line sources, lowered at weekends) and point sources
  (raised in the heating season);
* ``K_d``: a dispersion kernel, Gaussian, widened along and shifted down the day's mean wind;
* ``D = (800 m / blh)^0.7 (2.5 m/s / ws)^0.4``: dilution by the boundary layer and the wind
  (daily ERA5 fields bilinearly interpolated to the target grid, as the workflow does);
* ``W = exp(-0.04 tp - 0.008 (rh - 50))``: wet removal and aqueous oxidation;
* ``S``: a smooth log-normal "synoptic" factor (AR(1) in time) that only the satellite sees;
* ``h``: the heating-season factor.

From the truth: TROPOMI-like L2 orbits (pixels of 3.5 km across track at nadir widening to the
swath edges, 7 km along track before 2019-08-06 and 5.5 km after; column = surface
concentration x boundary-layer height at the overpass, averaged over the footprint, plus noise
and cloud gaps with low ``qa_value``; none before ``tropomi_start``), ERA5 hourly files (new
CDS ZIP of instant and accumulated streams), static GeoTIFFs and CNEMC ``china_sites`` stations
(hourly, with a diurnal cycle, noise, missing hours and the 273 K
reporting before 2018-09-01) from a network of city sites, county-town sites and
background (对照点) sites in the countryside, as real CNEMC networks have.  Everything is reproducible from the seed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..daily import DayWindow, day_of, product_days
from ..grid import Grid
from ..io import atomic_path, write_geotiff, write_netcdf
from ..sources import tropomi as tr
from ..sources.era5 import write_era5
from ..sources.era5_met import met_daily
from .fields import KM_PER_DEG, aggregate_mean, ar1_fields, gaussian_field

logger = logging.getLogger(__name__)

__all__ = ["SO2Knobs", "World", "make_world", "synth_met_hourly", "truth_so2", "synthesize_so2"]

MOLAR_MASS_SO2 = 64.066  # g mol-1
_ERA5_RES = 0.25
_REF_BLH, _REF_WS = 800.0, 2.5


@dataclass
class SO2Knobs:
    """The ``synthetic.so2`` config knobs; the schema's defaults are generated from these
    (``x-defaults-from``, :func:`gridfuse.config.sync_schema_defaults`)."""

    seed: int | None = None
    n_stations: int = 60
    background_share: float = 0.25
    town_share: float = 0.1
    n_cities: int = 4
    n_point_sources: int = 12
    background: float = 6.0
    heating_start: str = "10-15"
    heating_end: str = "04-15"
    heating_factor: float = 2.0
    weekend_factor: float = 0.85
    satellite_noise: float = 0.3
    cloud_fraction: float = 0.3
    tropomi_start: str = "2018-07-10"
    station_noise: float = 0.1
    missing_hours: float = 0.05
    unit_change: str = "2018-09-01"

    @classmethod
    def from_config(cls, cfg: dict | None) -> SO2Knobs:
        cfg = dict(cfg or {})
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown synthetic.so2 knob(s) {sorted(unknown)}")
        return cls(**cfg)


@dataclass
class World:
    """Static part of the synthetic world on the target grid."""

    grid: Grid
    dem: np.ndarray  # m
    landcover: np.ndarray  # IGBP-like class codes
    ndvi: np.ndarray
    population: np.ndarray  # persons km-2
    road_density: np.ndarray  # km km-2
    cities: pd.DataFrame  # name, lon, lat, sigma_km, people
    points: pd.DataFrame  # lon, lat, row, col, peak (ug/m3 at reference conditions)
    era_lat: np.ndarray = field(default_factory=lambda: np.empty(0))
    era_lon: np.ndarray = field(default_factory=lambda: np.empty(0))
    era_dem: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


# ------------------------------------------------------------------------------ world
def _km_axes(grid: Grid) -> tuple[float, float]:
    """km per cell along lon and lat at the grid's mid latitude."""
    lat0 = np.deg2rad(0.5 * (grid.south + grid.north))
    return grid.res * KM_PER_DEG * np.cos(lat0), grid.res * KM_PER_DEG


def _terrain(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Basin-and-range terrain (m): a N-S valley floor near 800 m between ridges to ~2000 m."""
    ny, nx = grid.shape
    big = gaussian_field(grid.shape, corr_cells=max(4.0, nx / 6), rng=rng)
    small = gaussian_field(grid.shape, corr_cells=max(1.5, nx / 40), rng=rng)
    x = (grid.lon - grid.west) / (grid.east - grid.west)
    # valley axis meanders with latitude
    axis = 0.5 + 0.12 * np.sin(2 * np.pi * (grid.lat - grid.south) / (grid.north - grid.south))
    dist = np.abs(x[None, :] - axis[:, None])
    ridge = 900.0 * np.clip(dist / 0.35, 0, 1) ** 1.5
    return (800.0 + ridge + 180.0 * big + 50.0 * small).astype("f8")


def make_world(
    grid: Grid, rng: np.random.Generator, n_cities: int = 4, n_point_sources: int = 12
) -> World:
    """Terrain, cities, population, roads, land cover, NDVI and point sources on ``grid``."""
    ny, nx = grid.shape
    kx, ky = _km_axes(grid)
    # terrain on a padded grid that also covers the ERA5 cells around the domain
    era = era5_grid(grid)
    h = _ERA5_RES / 2
    n_w = int(np.ceil((grid.west - (era[1].min() - h)) / grid.res - 1e-9))
    n_s = int(np.ceil((grid.south - (era[0].min() - h)) / grid.res - 1e-9))
    n_e = int(np.ceil((era[1].max() + h - grid.east) / grid.res - 1e-9))
    n_n = int(np.ceil((era[0].max() + h - grid.north) / grid.res - 1e-9))
    r = grid.res
    pad = Grid(
        grid.west - n_w * r, grid.south - n_s * r, grid.east + n_e * r, grid.north + n_n * r, r
    )
    dem_pad = _terrain(pad, rng)
    dem = dem_pad[n_n : n_n + ny, n_w : n_w + nx]
    era_dem = aggregate_mean(dem_pad, pad.lat, pad.lon, era[0], era[1])

    # cities: in the low valley, apart from each other and from the edges
    low = dem < np.quantile(dem, 0.35)
    margin = max(2, min(ny, nx) // 10)
    cand = np.argwhere(low[margin:-margin, margin:-margin]) + margin
    if cand.size == 0:
        cand = np.argwhere(np.ones((ny - 2 * margin, nx - 2 * margin), bool)) + margin
    chosen: list[np.ndarray] = []
    min_sep = max(nx, ny) / (1.5 * np.sqrt(n_cities) + 1)
    for _ in range(50 * n_cities):
        if len(chosen) == n_cities:
            break
        p = cand[rng.integers(len(cand))]
        if all(np.hypot(*(p - q)) >= min_sep for q in chosen):
            chosen.append(p)
    while len(chosen) < n_cities:  # tiny grids: accept closer cities
        chosen.append(cand[rng.integers(len(cand))])
    people = 3.0e6 * 0.45 ** np.arange(n_cities)
    sigma_km = 3.0 + 4.0 * (people / people[0]) ** 0.5
    cities = pd.DataFrame(
        {
            "name": [f"City{i + 1:02d}" for i in range(n_cities)],
            "row": [int(p[0]) for p in chosen],
            "col": [int(p[1]) for p in chosen],
            "people": people,
            "sigma_km": sigma_km,
        }
    )
    cities["lon"] = grid.lon[cities["col"]]
    cities["lat"] = grid.lat[cities["row"]]

    yy = (np.arange(ny)[:, None]) * ky
    xx = (np.arange(nx)[None, :]) * kx
    pop = 40.0 * np.exp(-np.clip(dem - 800.0, 0, None) / 500.0)  # rural, fewer in mountains
    pop *= np.exp(0.5 * gaussian_field(grid.shape, max(2.0, nx / 25), rng))
    for c in cities.itertuples():
        r2 = (yy - c.row * ky) ** 2 + (xx - c.col * kx) ** 2
        pop += c.people / (2 * np.pi * c.sigma_km**2) * np.exp(-r2 / (2 * c.sigma_km**2))

    # roads: highways between cities (and to the domain edge) plus urban streets
    roads_km = np.zeros(grid.shape)
    ends = [(c.lon, c.lat) for c in cities.itertuples()]
    links = [(ends[i], ends[j]) for i in range(len(ends)) for j in range(i + 1, len(ends))]
    for e in ends[:2]:
        links.append(
            (e, (grid.west + 0.02, e[1] + 0.3 * (grid.north - grid.south) * rng.uniform(-1, 1)))
        )
        links.append(
            (e, (grid.east - 0.02, e[1] + 0.3 * (grid.north - grid.south) * rng.uniform(-1, 1)))
        )
    for (x0, y0), (x1, y1) in links:
        n = int(np.hypot(x1 - x0, y1 - y0) / (grid.res / 5)) + 2
        s = np.linspace(0, 1, n)
        bend = 0.08 * np.hypot(x1 - x0, y1 - y0) * np.sin(np.pi * s) * rng.uniform(-1, 1)
        lon = x0 + (x1 - x0) * s - bend * (y1 - y0)
        lat = y0 + (y1 - y0) * s + bend * (x1 - x0)
        seg = np.hypot(np.diff(lon) * kx / grid.res, np.diff(lat) * ky / grid.res)
        row, col = grid.rowcol(0.5 * (lon[1:] + lon[:-1]), 0.5 * (lat[1:] + lat[:-1]), check=False)
        ok = row >= 0
        np.add.at(roads_km, (row[ok], col[ok]), seg[ok])
    cell_km2 = kx * ky
    road_density = roads_km / cell_km2 + 0.004 * np.sqrt(pop)  # urban streets ~ sqrt(pop)

    # land cover (IGBP codes): urban 13, cropland 12, grassland 10, mixed forest 5, barren 16
    z = gaussian_field(grid.shape, max(1.5, nx / 30), rng)
    elev_rank = (dem - dem.min()) / max(np.ptp(dem), 1.0) + 0.08 * z
    landcover = np.select(
        [pop > 1500, elev_rank < 0.35, elev_rank < 0.6, elev_rank < 0.85],
        [13, 12, 10, 5],
        default=16,
    ).astype("f8")
    ndvi_by_class = {13: 0.18, 12: 0.55, 10: 0.42, 5: 0.72, 16: 0.12}
    ndvi = np.vectorize(ndvi_by_class.get)(landcover) + 0.04 * z
    ndvi = np.clip(ndvi, -0.1, 0.95)

    # point sources: industry near the cities, on the valley floor
    pts = []
    for _ in range(n_point_sources):
        c = cities.iloc[rng.integers(len(cities))]
        for _try in range(20):
            dr, dc = rng.normal(0, 2.5 * c.sigma_km) / ky, rng.normal(0, 2.5 * c.sigma_km) / kx
            r, cc = int(round(c.row + dr)), int(round(c.col + dc))
            if 1 <= r < ny - 1 and 1 <= cc < nx - 1:
                break
        r, cc = int(np.clip(r, 1, ny - 2)), int(np.clip(cc, 1, nx - 2))
        pts.append((grid.lon[cc], grid.lat[r], r, cc, float(np.exp(rng.normal(np.log(25.0), 0.5)))))
    points = pd.DataFrame(pts, columns=["lon", "lat", "row", "col", "peak"])
    logger.info(
        "world %s: %d cities, %d point sources, population %.0f..%.0f km-2, roads max %.2f km km-2",
        grid.describe(),
        n_cities,
        len(points),
        pop.min(),
        pop.max(),
        road_density.max(),
    )
    return World(
        grid, dem, landcover, ndvi, pop, road_density, cities, points, era[0], era[1], era_dem
    )


def era5_grid(grid: Grid, margin: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """ERA5 0.25 deg cell centres (lat descending, lon ascending) covering grid + margin."""
    s = np.floor((grid.south - margin) / _ERA5_RES) * _ERA5_RES
    n = np.ceil((grid.north + margin) / _ERA5_RES) * _ERA5_RES
    w = np.floor((grid.west - margin) / _ERA5_RES) * _ERA5_RES
    e = np.ceil((grid.east + margin) / _ERA5_RES) * _ERA5_RES
    lat = np.round(np.arange(n, s - 1e-9, -_ERA5_RES), 4)
    lon = np.round(np.arange(w, e + 1e-9, _ERA5_RES), 4)
    return lat, lon


def write_static(world: World, folder: str | os.PathLike) -> dict[str, Path]:
    """Static GeoTIFFs: dem, landcover, ndvi, population (persons per pixel), road_density."""
    folder = Path(folder)
    kx, ky = (
        world.grid.res * KM_PER_DEG * np.cos(np.deg2rad(world.grid.lat)),
        world.grid.res * KM_PER_DEG,
    )
    persons = world.population * (kx * ky)[:, None]  # WorldPop-like count per pixel
    layers = {
        "dem": world.dem,
        "landcover": world.landcover,
        "ndvi": world.ndvi,
        "population": persons,
        "road_density": world.road_density,
    }
    return {
        k: write_geotiff(
            v.astype("f4"), folder / f"{k}.tif", grid=world.grid, tags={"synthetic": 1}
        )
        for k, v in layers.items()
    }


# ------------------------------------------------------------------------------ meteorology
def _season(doy: np.ndarray) -> np.ndarray:
    """0 in mid-January .. 1 in mid-July."""
    return 0.5 * (1 - np.cos(2 * np.pi * (doy - 15) / 365.25))


def _daily_ar1(n: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho**2) * e[i]
    return out


def synth_met_hourly(world: World, hours: pd.DatetimeIndex, rng: np.random.Generator) -> xr.Dataset:
    """Hourly ERA5-like ``blh, t2m, d2m, u10, v10, sp, tp`` on the ERA5 grid (ERA5 units)."""
    lat, lon, elev = world.era_lat, world.era_lon, world.era_dem
    hours = pd.DatetimeIndex(hours)
    days = pd.date_range(hours[0].normalize(), hours[-1].normalize() + pd.Timedelta("1D"))
    nd = len(days)
    # daily regional weather (AR(1) anomalies), interpolated to the hours
    t_anom = 3.0 * _daily_ar1(nd, 0.75, rng)
    hum = _daily_ar1(nd, 0.6, rng)
    blh_z = _daily_ar1(nd, 0.5, rng)
    doy_d = days.day_of_year.to_numpy()
    summer_d = _season(doy_d)
    u_d = -1.0 + 1.5 * summer_d + 2.0 * _daily_ar1(nd, 0.6, rng)  # winter northwesterlies
    v_d = -1.5 + 3.0 * summer_d + 2.0 * _daily_ar1(nd, 0.6, rng)
    rain_d = rng.random(nd) < (0.08 + 0.3 * summer_d)
    rain_mm = np.where(rain_d, rng.lognormal(np.log(5.0), 0.8, nd), 0.0)
    rain_start = rng.integers(0, 18, nd)
    tday = (hours - days[0]) / pd.Timedelta("1D")
    di = np.clip(np.floor(tday).astype(int), 0, nd - 1)
    interp = lambda a: np.interp(tday, np.arange(nd), a)  # noqa: E731
    lh = (hours.hour.to_numpy() + lon.mean() / 15.0) % 24  # local solar hour
    summer = _season(hours.day_of_year.to_numpy())
    rainy = rain_d[di].astype(float)

    shape = (len(hours), lat.size, lon.size)
    e = elev[None, :, :]
    spat = gaussian_field(elev.shape, 3.0, rng, n=3)
    t = (
        273.15
        + 10.0
        - 14.0 * np.cos(2 * np.pi * (hours.day_of_year.to_numpy() - 20) / 365.25)
        + 5.0 * np.sin(2 * np.pi * (lh - 9.0) / 24.0)
        + interp(t_anom)
        - 2.0 * rainy
    )[:, None, None] - 0.0065 * (e - 800.0)
    dd = 3.0 + 6.0 * (1 - summer) + 3.0 * np.clip(np.sin(2 * np.pi * (lh - 9.0) / 24.0), 0, None)
    dd = dd - 2.5 * rainy + 1.5 * interp(hum)
    d = t - np.clip(dd, 0.3, None)[:, None, None] - 0.3 * spat[0][None]
    daytime = np.clip(np.sin(np.pi * (lh - 7.0) / 12.0), 0, None) ** 1.5
    bl_day = (600.0 + 1000.0 * summer) * np.exp(0.25 * interp(blh_z)) * (1 - 0.35 * rainy)
    bl_night = 180.0 * np.exp(0.2 * interp(blh_z))
    blh = (bl_night + (bl_day - bl_night) * daytime)[:, None, None] * (
        1 + 0.00015 * (e - e.mean()) + 0.05 * spat[1][None]
    )
    u = (interp(u_d) + 0.8 * daytime)[:, None, None] + 0.5 * spat[2][None] * np.ones(shape)
    v = (interp(v_d) + 0.5 * np.sin(2 * np.pi * lh / 24))[:, None, None] * np.ones(shape)
    sp = 101325.0 * np.exp(-e / 8200.0) - 250.0 * interp(t_anom)[:, None, None] / 3.0
    # rain: the day's amount spread over 6 hours from a random start (UTC), patchy in space
    hod = hours.hour.to_numpy()
    in_rain = rain_d[di] & (hod >= rain_start[di]) & (hod < rain_start[di] + 6)
    tp_mm = np.where(in_rain, rain_mm[di] / 6.0, 0.0)[:, None, None] * np.exp(
        0.4 * spat[0][None] - 0.08
    )
    data = {
        "blh": blh,
        "t2m": t,
        "d2m": d,
        "u10": u,
        "v10": v,
        "sp": sp * np.ones(shape),
        "tp": tp_mm / 1000.0,
    }
    units = {
        "blh": "m",
        "t2m": "K",
        "d2m": "K",
        "u10": "m s**-1",
        "v10": "m s**-1",
        "sp": "Pa",
        "tp": "m",
    }
    ds = xr.Dataset(
        {
            k: (("time", "lat", "lon"), np.asarray(v, "f4"), {"units": units[k]})
            for k, v in data.items()
        },
        coords={"time": hours, "lat": lat, "lon": lon},
    )
    return ds


# ------------------------------------------------------------------------------ truth
def _kernel(grid: Grid, u: float, v: float, half: int) -> np.ndarray:
    """Dispersion kernel (sums to 1): Gaussian widened along and shifted down the wind."""
    kx, ky = _km_axes(grid)
    ws = float(np.hypot(u, v))
    x = np.arange(-half, half + 1)[None, :] * kx  # km east
    y = -np.arange(-half, half + 1)[:, None] * ky  # km north (rows run south)
    ex, ey = (u / ws, v / ws) if ws > 1e-6 else (1.0, 0.0)
    along = x * ex + y * ey - 0.6 * ws
    cross = -x * ey + y * ex
    s_cross, s_along = 1.6, 1.6 + 0.9 * ws
    k = np.exp(-0.5 * ((along / s_along) ** 2 + (cross / s_cross) ** 2))
    return k / k.sum()


def _convolve(field: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(field, kernel, mode="same")


def _in_season(days: pd.DatetimeIndex, start: str, end: str) -> np.ndarray:
    md = days.strftime("%m-%d")
    return (md >= start) | (md <= end) if start > end else (md >= start) & (md <= end)


def truth_so2(
    world: World,
    met: xr.Dataset,
    wind: tuple[np.ndarray, np.ndarray],
    days: pd.DatetimeIndex,
    knobs: SO2Knobs,
    rng: np.random.Generator,
) -> np.ndarray:
    """Daily surface SO2 (ug/m3, 298 K) ``(day, lat, lon)`` on the world's grid.

    ``met`` holds daily ``blh, ws, rh, tp`` on the target grid for ``days``; ``wind`` the
    domain-mean daily ``(u10, v10)`` that orient the day's plumes.
    """
    g = world.grid
    kx, ky = _km_axes(g)
    half = int(np.ceil(25.0 / min(kx, ky)))
    ref = _kernel(g, 0.0, 0.0, half)
    e_area = world.population / world.population.max()
    e_road = world.road_density / world.road_density.max()
    area_amp = 22.0 / max(_convolve(e_area, ref).max(), 1e-9)
    road_amp = 7.0 / max(_convolve(e_road, ref).max(), 1e-9)
    e_point = np.zeros(g.shape)
    np.add.at(
        e_point,
        (world.points["row"].to_numpy(), world.points["col"].to_numpy()),
        world.points["peak"].to_numpy() / ref.max(),
    )
    heating = _in_season(days, knobs.heating_start, knobs.heating_end)
    weekend = days.day_of_week.to_numpy() >= 5
    # synoptic factor: smooth in space (corr ~ 40 km), AR(1) in time, computed coarse
    coarse = (max(2, g.nlat // 5), max(2, g.nlon // 5))
    syn, _ = ar1_fields(len(days), coarse, corr_cells=7.0, rho=0.6, rng=rng)
    from scipy.ndimage import zoom

    sigma_syn = 0.18
    out = np.empty((len(days),) + g.shape, dtype="f4")
    u_d, v_d = (np.asarray(a, dtype="f8") for a in wind)
    for i in range(len(days)):
        h = knobs.heating_factor if heating[i] else 1.0
        w = knobs.weekend_factor if weekend[i] else 1.0
        emis = area_amp * h * w * e_area + road_amp * w * e_road + h * e_point
        plume = np.clip(_convolve(emis, _kernel(g, u_d[i], v_d[i], half)), 0, None)
        blh = met["blh"].values[i]
        ws = met["ws"].values[i]
        dil = (_REF_BLH / np.clip(blh, 50, None)) ** 0.7 * (_REF_WS / np.clip(ws, 0.5, None)) ** 0.4
        wash = np.exp(-0.04 * met["tp"].values[i] - 0.008 * (met["rh"].values[i] - 50.0))
        s = zoom(syn[i], (g.nlat / coarse[0], g.nlon / coarse[1]), order=1)[: g.nlat, : g.nlon]
        s = np.exp(sigma_syn * s - sigma_syn**2 / 2)
        bg = knobs.background * (1 + 0.3 * (h - 1)) * dil**0.3
        out[i] = bg + dil * wash * s * plume
    small = np.exp(rng.normal(0, 0.04, out.shape) - 0.0008)
    out *= small.astype("f4")
    logger.info(
        "truth SO2: mean %.1f ug/m3, p5..p99 %.1f..%.1f",
        float(out.mean()),
        *np.percentile(out, [5, 99]),
    )
    return out


# ------------------------------------------------------------------------------ TROPOMI
_SPEED_KM_S = 6.8  # ground-track speed
_SWATH_KM = 2600.0
_N_GROUND = 450


def _across_edges() -> np.ndarray:
    """Across-track pixel edges (km from nadir) of the 450 ground pixels (3.5 km at nadir)."""
    u = (np.arange(_N_GROUND) + 0.5 - _N_GROUND / 2) / (_N_GROUND / 2)
    w = 3.5 * (1 + 1.95 * u**2)
    w *= _SWATH_KM / w.sum()
    return np.concatenate([[0.0], np.cumsum(w)]) - _SWATH_KM / 2


def _orbit_pixels(grid: Grid, x0_km: float, along_km: float, buffer: float = 0.15):
    """Pixel corner lon/lat ``(ns, ng, 4)`` of the swath part covering the grid + buffer."""
    lat0 = 0.5 * (grid.south + grid.north)
    lon0 = 0.5 * (grid.west + grid.east)
    kx = KM_PER_DEG * np.cos(np.deg2rad(lat0))
    heading = np.deg2rad(-13.0)  # ascending node, north-north-west
    a = np.array([np.sin(heading), np.cos(heading)])  # along-track unit (east, north)
    c = np.array([np.cos(heading), -np.sin(heading)])  # across-track unit
    half_x = (grid.east - grid.west) / 2 * kx + buffer * kx
    half_y = (grid.north - grid.south) / 2 * KM_PER_DEG + buffer * KM_PER_DEG
    reach = np.hypot(half_x, half_y)
    edges_x = _across_edges() - x0_km  # relative to the domain centre
    g_sel = np.flatnonzero((edges_x[1:] > -reach) & (edges_x[:-1] < reach))
    if g_sel.size == 0:
        return None
    ns = int(np.ceil(2 * reach / along_km)) + 1
    edges_y = (np.arange(ns + 1) - ns / 2) * along_km
    xl, xh = edges_x[g_sel][None, :], edges_x[g_sel + 1][None, :]
    yl, yh = edges_y[:-1][:, None], edges_y[1:][:, None]
    cx = np.stack(np.broadcast_arrays(xl, xh, xh, xl), -1)
    cy = np.stack(np.broadcast_arrays(yl, yl, yh, yh), -1)
    east = cx * c[0] + cy * a[0]
    north = cx * c[1] + cy * a[1]
    lon_b = lon0 + east / kx
    lat_b = lat0 + north / KM_PER_DEG
    w, s, e, n = grid.bounds
    touch = (
        (lon_b.max(-1) >= w - buffer)
        & (lon_b.min(-1) <= e + buffer)
        & (lat_b.max(-1) >= s - buffer)
        & (lat_b.min(-1) <= n + buffer)
    )
    rows = np.flatnonzero(touch.any(1))
    cols = np.flatnonzero(touch.any(0))
    if rows.size == 0:
        return None
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return lon_b[sl], lat_b[sl], edges_y[rows[0] : rows[-1] + 1] + along_km / 2


def write_tropomi_orbits(
    truth: np.ndarray,
    blh_overpass: np.ndarray,
    days: pd.DatetimeIndex,
    grid: Grid,
    knobs: SO2Knobs,
    rng: np.random.Generator,
    folder: str | os.PathLike,
    window: DayWindow,
) -> list[Path]:
    """One L2 file per day from ``tropomi_start``: footprint-averaged column with noise/clouds."""
    folder = Path(folder)
    first = pd.Timestamp(knobs.tropomi_start)
    launch = pd.Timestamp("2017-10-13 09:27")
    period_min = 100.8
    lon0 = 0.5 * (grid.west + grid.east)
    files, written = [], []  # the files and their product days
    to_col = 1e-6 / MOLAR_MASS_SO2  # ug m-3 -> mol m-3
    bg_col = 0.1 / tr.DU_PER_MOL_M2
    for i, day in enumerate(days):
        if day < first:
            continue
        # overpass near 13:30 local solar time; on product day `day`
        t_mid = day + pd.Timedelta(hours=(13.5 - lon0 / 15.0 + rng.uniform(-0.4, 0.4)) % 24)
        if window.day_of_instant([t_mid])[0] != day:
            t_mid -= pd.Timedelta("1D")
        along = 7.0 if day < pd.Timestamp("2019-08-06") else 5.5
        geo = _orbit_pixels(grid, rng.uniform(-1150, 1150), along)
        if geo is None:
            continue
        lon_b, lat_b, y_centre = geo
        ns, ng = lon_b.shape[:2]
        col_field = truth[i].astype("f8") * to_col * blh_overpass[i] + bg_col
        sx, sy = tr.quad_subpoints(lon_b.reshape(-1, 4), lat_b.reshape(-1, 4), 4)
        rr = np.clip(np.floor((grid.north - sy.ravel()) / grid.res), 0, grid.nlat - 1).astype(int)
        cc = np.clip(np.floor((sx.ravel() - grid.west) / grid.res), 0, grid.nlon - 1).astype(int)
        column = col_field[rr, cc].reshape(ns * ng, -1).mean(1).reshape(ns, ng)
        column = column * np.exp(rng.normal(0, 0.1, column.shape)) + rng.normal(
            0, knobs.satellite_noise / tr.DU_PER_MOL_M2, column.shape
        )
        outlier = rng.random(column.shape) < 0.002
        column[outlier] = -0.0015
        # clouds: smooth field, cloudy share around cloud_fraction (more on some days)
        p_cloud = float(np.clip(knobs.cloud_fraction * rng.uniform(0.2, 2.0), 0, 0.97))
        z = gaussian_field((ns, ng), 4.0, rng)
        thr = np.quantile(z, 1 - p_cloud) if p_cloud > 0 else np.inf
        cloudy = z > thr
        cf = np.where(cloudy, 0.3 + 0.7 * rng.random(z.shape), 0.3 * rng.random(z.shape))
        # most cloudy pixels fail the qa screening; some pass it and only the cloud screening
        # (cloud_fraction_crb) removes them
        qa_cloudy = np.where(
            rng.random(z.shape) < 0.7,
            rng.uniform(0.1, 0.49, z.shape),
            rng.uniform(0.5, 0.74, z.shape),
        )
        qa = np.where(cloudy, qa_cloudy, rng.uniform(0.75, 1.0, z.shape))
        qa[rng.random(z.shape) < 0.005] = 0.0
        ref = t_mid.normalize()
        t_lines = t_mid + pd.to_timedelta(y_centre / _SPEED_KM_S, unit="s")
        delta_ms = ((t_lines - ref) / pd.Timedelta("1ms")).to_numpy().astype("i8")
        start = (t_mid - pd.Timedelta(minutes=period_min / 2)).floor("s")
        orbit = int((t_mid - launch) / pd.Timedelta(minutes=period_min))
        written.append(day)
        name = tr.l2_filename(
            start.to_pydatetime(), (start + pd.Timedelta(minutes=period_min)).to_pydatetime(), orbit
        )
        files.append(
            tr.write_l2(
                folder / name,
                column=column,
                lon_bounds=lon_b,
                lat_bounds=lat_b,
                qa_value=qa,
                cloud_fraction=cf,
                reference_time=ref.to_datetime64(),
                delta_time_ms=delta_ms,
                orbit=orbit,
            )
        )
    logger.info(
        "wrote %d TROPOMI L2 orbits (first on %s) to %s",
        len(files),
        written[0].date() if written else "-",
        folder,
    )
    return files


# ------------------------------------------------------------------------------ stations
def _split_counts(n: int, background_share: float, town_share: float) -> tuple[int, int, int]:
    """Numbers of city, town and background stations out of ``n`` (at least one city site)."""
    if not (0 <= background_share <= 1 and 0 <= town_share <= 1):
        raise ValueError(
            f"station shares must lie in [0, 1], got background_share={background_share}, "
            f"town_share={town_share}"
        )
    if background_share + town_share >= 1:
        raise ValueError(
            "background_share + town_share must stay below 1 (some stations sit in cities), "
            f"got {background_share} + {town_share}"
        )
    n_bg = int(round(background_share * n))
    n_town = int(round(town_share * n))
    n_bg = min(n_bg, n - 1)
    n_town = min(n_town, n - 1 - n_bg)
    return n - n_bg - n_town, n_town, n_bg


def _stamp(blocked: np.ndarray, disk: np.ndarray, q: np.ndarray) -> None:
    """Set ``disk`` (odd square, centred) into ``blocked`` around cell ``q``, clipped."""
    h = disk.shape[0] // 2
    r, c = int(q[0]), int(q[1])
    r0, r1 = max(r - h, 0), min(r + h + 1, blocked.shape[0])
    c0, c1 = max(c - h, 0), min(c + h + 1, blocked.shape[1])
    blocked[r0:r1, c0:c1] |= disk[r0 - r + h : r1 - r + h, c0 - c + h : c1 - c + h]


def _spread_pick(
    cand: np.ndarray, k: int, min_sep: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """``k`` cells of ``cand`` (rows of (row, col)) in random order, at least ``min_sep`` apart.

    The separation is halved until ``k`` cells fit (tiny grids), so exactly ``k`` come back
    whenever ``cand`` holds that many distinct cells.
    """
    chosen: list[np.ndarray] = []
    if k <= 0 or len(cand) == 0:
        return chosen
    # a pick blocks the cells closer than the separation on a raster over the candidates, so
    # a candidate's test is one lookup whatever the number of picks (testing every candidate
    # against every pick in Python had not finished after 6 minutes on the China grid)
    lo = cand.min(0)
    rc = cand - lo
    shape = tuple(int(n) for n in rc.max(0) + 1)
    chunk = 4096
    sep = float(min_sep)
    while len(chosen) < k:
        order = rng.permutation(len(cand))
        s = max(sep, 1.0)
        h = int(np.ceil(s))
        dr, dc = np.mgrid[-h : h + 1, -h : h + 1]
        disk = np.hypot(dr, dc) < s
        blocked = np.zeros(shape, bool)
        for q in chosen:
            _stamp(blocked, disk, q - lo)
        for a in range(0, len(order), chunk):
            idx = order[a : a + chunk]
            j = 0
            while len(chosen) < k:
                free = np.flatnonzero(~blocked[rc[idx[j:], 0], rc[idx[j:], 1]])
                if free.size == 0:
                    break
                j += int(free[0])
                chosen.append(cand[idx[j]])
                _stamp(blocked, disk, rc[idx[j]])
                j += 1
            if len(chosen) == k:
                break
        if sep < 1.0:  # fewer distinct cells than stations: reuse cells
            while len(chosen) < k:
                chosen.append(cand[rng.integers(len(cand))])
        sep /= 2
    return chosen


def station_network(
    world: World,
    n: int,
    rng: np.random.Generator,
    background_share: float = 0.0,
    town_share: float = 0.0,
) -> pd.DataFrame:
    """A CNEMC-like network: city sites, county-town sites and background (对照点) sites.

    City sites cluster in the cities (more in bigger cities).  Town sites sit in the most
    populated cells outside the city cores (the county towns along the roads).  Background
    sites (``reference`` = Y, the 对照点 of the station list) sit in clean countryside over
    the domain: far from the city centres (in units of each city's size), away from the
    point sources and off the busy roads, spread apart.  Each site lists its nearest city.

    Returns ``station, city, name, lon, lat, row, col, kind, reference`` (kind = city, town
    or background), one code per station.
    """
    g = world.grid
    kx, ky = _km_axes(g)
    n_city, n_town, n_bg = _split_counts(n, background_share, town_share)
    w = world.cities["people"].to_numpy() ** 0.7
    counts = np.maximum(1, np.floor(n_city * w / w.sum()).astype(int))
    while counts.sum() < n_city:
        counts[np.argmax(w / counts)] += 1
    while counts.sum() > n_city:
        counts[np.argmax(counts)] -= 1
    edge = max(1, min(g.nlat, g.nlon) // 40)
    cells = []  # (kind, row, col)
    for c, k in zip(world.cities.itertuples(), counts):
        for _ in range(k):
            r = int(
                np.clip(
                    round(c.row + rng.normal(0, 0.8 * c.sigma_km / ky)), edge, g.nlat - 1 - edge
                )
            )
            cc = int(
                np.clip(
                    round(c.col + rng.normal(0, 0.8 * c.sigma_km / kx)), edge, g.nlon - 1 - edge
                )
            )
            cells.append(("city", r, cc))

    # distances (km) of every cell to the city centres, in units of each city's size
    yy = np.arange(g.nlat)[:, None] * ky
    xx = np.arange(g.nlon)[None, :] * kx
    # running minimum over the cities (a stack of them would hold n_cities grids: 7 GB for
    # 40 cities on the China grid); strict < keeps the first city on ties, as argmin does
    d_city = np.full(g.shape, np.inf)
    nearest_city = np.zeros(g.shape, np.intp)
    for i, c in enumerate(world.cities.itertuples()):
        d = np.hypot(yy - c.row * ky, xx - c.col * kx) / c.sigma_km
        closer = d < d_city
        nearest_city[closer] = i
        np.minimum(d_city, d, out=d_city)
    d_point = np.full(g.shape, np.inf)
    for p in world.points.itertuples():
        d_point = np.minimum(d_point, np.hypot(yy - p.row * ky, xx - p.col * kx))
    inner = np.zeros(g.shape, bool)
    inner[edge : g.nlat - edge, edge : g.nlon - edge] = True
    sep_cells = np.sqrt(g.nlat * g.nlon / max(n_town + n_bg, 1)) / 2

    if n_town:
        out_of_core = inner & (d_city > 2.5)
        if out_of_core.sum() < n_town:
            out_of_core = inner & (d_city >= np.quantile(d_city[inner], 0.5))
        pop = np.where(out_of_core, world.population, -np.inf)
        top = pop >= np.quantile(pop[out_of_core], 0.9)
        cand = np.argwhere(top & out_of_core)
        for r, cc in _spread_pick(cand, n_town, sep_cells, rng):
            cells.append(("town", int(r), int(cc)))

    if n_bg:
        # clean countryside: far from the cities, the point sources and the busy roads
        far = inner & (d_city > 4.0)
        if far.sum() < 4 * n_bg:
            far = inner & (d_city >= np.quantile(d_city[inner], 0.7))
        clean = far & (d_point > 8.0)
        if clean.sum() >= 4 * n_bg:
            far = clean
        quiet = far & (world.road_density <= np.quantile(world.road_density[far], 0.5))
        cand = np.argwhere(quiet if quiet.sum() >= n_bg else far)
        for r, cc in _spread_pick(cand, n_bg, 2 * sep_cells, rng):
            cells.append(("background", int(r), int(cc)))

    rows = []
    names = world.cities["name"].to_numpy()
    seen: dict[tuple[str, str], int] = {}
    for kind, r, cc in cells:
        city = str(names[nearest_city[r, cc]])
        seen[(city, kind)] = seen.get((city, kind), 0) + 1
        tag = {"city": "", "town": "T", "background": "BG"}[kind]
        # a point inside the cell, not at its centre
        lon = g.lon[cc] + rng.uniform(-0.4, 0.4) * g.res
        lat = g.lat[r] + rng.uniform(-0.4, 0.4) * g.res
        rows.append(
            (
                city,
                f"{city}-{tag}{seen[(city, kind)]:02d}",
                round(lon, 4),
                round(lat, 4),
                r,
                cc,
                kind,
                "Y" if kind == "background" else "N",
            )
        )
    st = pd.DataFrame(
        rows, columns=["city", "name", "lon", "lat", "row", "col", "kind", "reference"]
    )
    st.insert(0, "station", [f"{1001 + i}A" for i in range(len(st))])
    logger.info(
        "station network: %d city, %d town and %d background (对照点) sites",
        n_city,
        n_town,
        n_bg,
    )
    return st


def station_hourly(
    truth: np.ndarray,
    days: pd.DatetimeIndex,
    stations: pd.DataFrame,
    window: DayWindow,
    knobs: SO2Knobs,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Hourly SO2 at the stations, long ``station, time, type, value`` (time = BJT hour end)."""
    first = days[0] + window.offset + pd.Timedelta("1h")
    last = days[-1] + window.offset + pd.Timedelta("1D")
    utc_end = pd.date_range(first, last, freq="h")
    day = day_of(utc_end, window, convention="end", step="1h")
    idx = pd.Index(days).get_indexer(day)
    ok = idx >= 0
    utc_end, idx = utc_end[ok], idx[ok]
    bjt = utc_end + pd.Timedelta(hours=8)
    h = bjt.hour.to_numpy() + 0.5  # hour mid (BJT)
    prof = 1 + 0.3 * np.exp(-((h - 9.5) ** 2) / 8) - 0.2 * np.exp(-((h - 16.5) ** 2) / 10)
    prof = prof / prof.mean()
    nh, nst = len(utc_end), len(stations)
    vals = truth[:, stations["row"].to_numpy(), stations["col"].to_numpy()][idx].astype("f8")
    rep = np.exp(rng.normal(0, 0.06, nst))
    sig = knobs.station_noise
    eps = np.empty((nh, nst))
    eps[0] = rng.normal(0, sig, nst)
    innov = rng.normal(0, sig * np.sqrt(1 - 0.7**2), (nh, nst))
    for k in range(1, nh):
        eps[k] = 0.7 * eps[k - 1] + innov[k]
    v = vals * rep[None] * prof[:, None] * np.exp(eps - sig**2 / 2)
    v = np.where(
        bjt.to_numpy()[:, None] < np.datetime64(pd.Timestamp(knobs.unit_change)),
        v * 298.0 / 273.0,
        v,
    )
    v = np.maximum(np.round(v), 1.0)
    miss = rng.random(v.shape) < knobs.missing_hours
    # a few outages: a station off for a whole day
    out_days = rng.random((len(days), nst)) < 0.01
    miss |= out_days[idx]
    v[miss] = np.nan
    roll = pd.DataFrame(v).rolling(24, min_periods=1).mean().round().to_numpy()
    codes = stations["station"].to_numpy().astype(str)
    parts = [
        pd.DataFrame(
            {
                "station": np.tile(codes, nh),
                "time": np.repeat(bjt.to_numpy(), nst),
                "type": typ,
                "value": a.ravel(),
            }
        )
        for typ, a in (("SO2", v), ("SO2_24h", roll))
    ]
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------ driver
def synthesize_so2(
    grid: Grid,
    start: str,
    end: str,
    utc_start_hour: int,
    out_dir: str | os.PathLike,
    knobs: SO2Knobs,
    seed: int,
    product: str = "",
) -> dict:
    """Synthesize the SO2 OSSE for a product and write every raw input; returns the manifest.

    Writes under ``out_dir`` (= ``results/<product>``): ``raw/tropomi/*.nc`` (L2 orbits),
    ``raw/era5_met/era5_met_YYYYMM.zip`` (new-CDS ZIPs), ``raw/static/<layer>.tif``,
    ``raw/stations/china_sites_YYYYMMDD.csv`` + ``station_list.csv``, ``raw/truth/{year}.nc``
    (published to ``truth/{year}.nc`` by the workflow) and ``raw/manifest.json`` (written last;
    paths relative to ``raw/``).
    """
    from ..regrid import regrid
    from ..stations.cnemc import write_china_sites, write_station_list

    out_dir = Path(out_dir)
    raw = out_dir / "raw"
    seed = knobs.seed if knobs.seed is not None else seed
    ss = np.random.SeedSequence(seed)
    r_world, r_met, r_truth, r_sat, r_st = (np.random.default_rng(s) for s in ss.spawn(5))
    window = DayWindow(int(utc_start_hour))
    days = product_days(start, end)

    world = make_world(grid, r_world, knobs.n_cities, knobs.n_point_sources)
    static = write_static(world, raw / "static")

    d0, d1 = window.bounds(days[[0, -1]])
    hours = pd.date_range(d0[0].floor("D"), d1[-1].ceil("D"), freq="h")
    met_h = synth_met_hourly(world, hours, r_met)
    era_files = []
    for month, part in met_h.groupby(met_h.time.dt.strftime("%Y%m")):
        era_files.append(
            write_era5(
                raw / "era5_met" / f"era5_met_{month}.zip", part, flavour="new", zip_streams=True
            )
        )
    met_d = met_daily(met_h, days, window)
    fine = regrid(met_d[["blh", "ws", "rh", "tp"]], grid, "bilinear")
    wind = (met_d["u10"].mean(("lat", "lon")).values, met_d["v10"].mean(("lat", "lon")).values)
    truth = truth_so2(world, fine, wind, days, knobs, r_truth)

    # boundary layer at the overpass hour (about 13:30 local solar time)
    op = np.round(13.5 - 0.5 * (grid.west + grid.east) / 15.0) % 24
    t_op = days + pd.Timedelta(hours=float(op))
    t_op = pd.DatetimeIndex(
        [
            t if window.day_of_instant([t])[0] == d else t - pd.Timedelta("1D")
            for t, d in zip(t_op, days)
        ]
    )
    blh_op = regrid(met_h["blh"].sel(time=t_op), grid, "bilinear").values
    tropomi_files = write_tropomi_orbits(
        truth, blh_op, days, grid, knobs, r_sat, raw / "tropomi", window
    )

    stations = station_network(
        world, knobs.n_stations, r_st, knobs.background_share, knobs.town_share
    )
    hourly = station_hourly(truth, days, stations, window, knobs, r_st)
    station_files = write_china_sites(hourly, raw / "stations")
    write_station_list(stations, raw / "stations" / "station_list.csv")

    truth_files = {}
    coords = grid.coords()
    for year in sorted(set(days.year)):
        sel = days.year == year
        da = xr.DataArray(
            truth[sel],
            dims=("time", "lat", "lon"),
            coords={**coords, "time": days[sel]},
            name="so2",
        )
        path = raw / "truth" / f"{year}.nc"
        write_netcdf(
            da,
            path,
            cfg={"seed": seed, "knobs": knobs.__dict__},
            sources=["synthetic"],
            utc_start_hour=int(utc_start_hour),
            what="OSSE truth",
        )
        truth_files[str(year)] = os.path.relpath(path, raw)

    def by_year(paths, key):
        out: dict[str, list[str]] = {}
        for p in paths:
            out.setdefault(str(key(p)), []).append(os.path.relpath(p, raw))
        return out

    manifest = {
        "product": product,
        "kind": "so2",
        "seed": seed,
        "grid": list(grid.bounds) + [grid.res],
        "period": [str(start), str(end)],
        "utc_start_hour": int(utc_start_hour),
        "knobs": knobs.__dict__,
        "sources": {
            "tropomi": by_year(tropomi_files, lambda p: tr.parse_l2_filename(p)["start"].year),
            "era5_met": by_year(era_files, lambda p: int(Path(p).stem[-6:-2])),
        },
        "static": {k: os.path.relpath(v, raw) for k, v in static.items()},
        "stations": {
            "format": "cnemc",
            "folder": "stations",
            "n_files": len(station_files),
            "station_list": "stations/station_list.csv",
            "stations": stations[["station", "city", "lon", "lat", "kind", "reference"]].to_dict(
                "records"
            ),
        },
        "truth": truth_files,
        "world": {
            "cities": world.cities[["name", "lon", "lat", "people", "sigma_km"]].to_dict("records"),
            "point_sources": world.points[["lon", "lat", "peak"]].to_dict("records"),
        },
    }
    with atomic_path(raw / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=float))
    logger.info(
        "SO2 OSSE %s: %d days, %d TROPOMI orbits, %d ERA5 files, %d stations",
        product,
        len(days),
        len(tropomi_files),
        len(era_files),
        len(stations),
    )
    return manifest
