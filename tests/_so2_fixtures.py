"""Tiny synthetic SO2 inputs (fields, static layers, stations) for the SO2 model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from gridfuse.features import DEFAULT_DYNAMIC, DEFAULT_STATIC
from gridfuse.grid import Grid

GRID = Grid(west=112.0, south=37.0, east=112.24, north=37.2, res=0.01)  # 20 x 24


def make_inputs(n_days: int = 40, n_stations: int = 14, seed: int = 0, nan_frac: float = 0.1):
    """Fields on GRID, static layers, stations and daily observations with a known signal."""
    rng = np.random.default_rng(seed)
    ny, nx = GRID.shape
    times = pd.date_range("2018-08-20", periods=n_days, freq="D")
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    dyn = {}
    for i, v in enumerate(DEFAULT_DYNAMIC):
        base = np.sin(3 * xx + i) + np.cos(2 * yy - i)
        daily = rng.normal(0, 1, (n_days, 1, 1))
        dyn[v] = (base[None] + daily + 0.2 * rng.normal(0, 1, (n_days, ny, nx))).astype(np.float32)
    col = dyn["so2_column"]
    col[rng.random(col.shape) < nan_frac] = np.nan
    coords = {"time": times, "lat": GRID.lat, "lon": GRID.lon}
    dynamic = xr.Dataset({v: (("time", "lat", "lon"), a) for v, a in dyn.items()}, coords=coords)
    static = xr.Dataset(
        {
            v: (("lat", "lon"), (np.cos(4 * yy + j) * xx).astype(np.float32))
            for j, v in enumerate(DEFAULT_STATIC)
        },
        coords={"lat": GRID.lat, "lon": GRID.lon},
    )
    truth = 20 + 6 * np.nan_to_num(col) - 4 * dyn["blh"] + 5 * static["population"].values[None]
    r = rng.choice(ny * nx, n_stations, replace=False)
    rows, cols = r // nx, r % nx
    stations = pd.DataFrame(
        {
            "station": [f"{1000 + i}A" for i in range(n_stations)],
            "lat": GRID.lat[rows],
            "lon": GRID.lon[cols],
            "elevation": 800.0,
            "role": "train",
        }
    )
    t, s = np.meshgrid(np.arange(n_days), np.arange(n_stations), indexing="ij")
    val = truth[t, rows[s], cols[s]] + rng.normal(0, 1, t.shape)
    daily = pd.DataFrame(
        {
            "station": stations["station"].to_numpy()[s.ravel()],
            "date": times[t.ravel()],
            "value": val.ravel(),
            "n_valid": 24,
        }
    )
    daily = daily.sample(frac=0.85, random_state=seed).sort_values(["station", "date"])
    return dynamic, static, stations, daily.reset_index(drop=True)
