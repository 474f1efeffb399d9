"""Benchmark: regridding to the Qinghai 0.01 deg grid (850 x 1390), ours against GDAL.

For 0.1 and 0.25 deg sources (cropped to the grid plus a 0.5 deg margin, as the ingest
rules do) and each method, measures output throughput (Mcell/s = output cells per second)
of :class:`gridfuse.regrid.Regridder` and of GDAL (``rioxarray .rio.reproject`` with the
same resampling) on the same ``(days, lat, lon)`` float32 array in the same process, both
with the same number of threads.  Then, in a fresh subprocess, the peak resident memory of
downscaling a full-size year (365 x 850 x 1390) of one 0.1 deg source the way the
``downscale`` rule does it (lazy dask chunks over time, streamed to a compressed NetCDF).

Writes ``results/benchmarks/regrid.json`` (format: benchmarks/_common.py).

    .venv/bin/python benchmarks/regrid.py [--days 32] [--threads 2] [--year-days 365]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from _common import Bench, PeakRSS, best_time, peak_rss_mb

from gridfuse.grid import Grid
from gridfuse.regrid import METHODS, Regridder

GRID = Grid.preset("qinghai")
MEMORY_BUDGET_MB = 2048.0


def source_axes(res: float, margin: float = 0.5):
    """Centres of a ``res`` grid aligned to multiples of ``res`` covering GRID + margin."""
    west = np.floor((GRID.west - margin) / res) * res
    east = np.ceil((GRID.east + margin) / res) * res
    south = np.floor((GRID.south - margin) / res) * res
    north = np.ceil((GRID.north + margin) / res) * res
    lon = west + (np.arange(round((east - west) / res)) + 0.5) * res
    lat = north - (np.arange(round((north - south) / res)) + 0.5) * res
    return lat, lon


def source_values(days: int, lat, lon, seed: int = 0) -> np.ndarray:
    """Precipitation-like fields: mostly dry, gamma-distributed where wet."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(0.5, 6.0, (days, lat.size, lon.size)).astype("f4")
    x[rng.random(x.shape) < 0.4] = 0.0
    return x


def gdal_reproject(values, lat, lon, method: str, threads: int, nodata: bool = False):
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr
    from rasterio.enums import Resampling

    da = xr.DataArray(values, dims=("band", "y", "x"), coords={"y": lat, "x": lon})
    da = da.rio.write_crs("EPSG:4326")
    if nodata:
        da = da.rio.write_nodata(np.nan)
    return da.rio.reproject(
        "EPSG:4326",
        shape=GRID.shape,
        transform=GRID.transform,
        resampling=getattr(Resampling, method),
        nodata=np.nan,
        num_threads=threads,
    )


def throughput(bench: Bench, days: int, threads: int, repeat: int) -> None:
    cells = days * GRID.size
    for res in (0.1, 0.25):
        lat, lon = source_axes(res)
        x = source_values(days, lat, lon)
        out = np.empty((days,) + GRID.shape, dtype="f4")
        for method in METHODS:
            rg = Regridder(lat, lon, GRID, method)
            # a fresh output array per call, as GDAL allocates its own (page faults included)
            t_ours = best_time(partial(rg, x, threads=threads), repeat=repeat)
            rg(x, threads=threads, out=out)
            t_gdal = best_time(partial(gdal_reproject, x, lat, lon, method, threads), repeat=repeat)
            ref = gdal_reproject(x, lat, lon, method, threads).values
            agree = float(np.nanmax(np.abs(out - ref)))
            bench.add(
                f"{method} {res} deg -> 0.01 deg",
                "Mcell/s",
                ours=cells / t_ours / 1e6,
                reference=cells / t_gdal / 1e6,
                reference_name="GDAL (rioxarray reproject)",
                source_shape=list(x.shape),
                target_shape=[days, *GRID.shape],
                threads=threads,
                max_abs_diff_vs_gdal=agree,
            )
    # missing data: 5 % of the source cells NaN, ours through its slower NaN path on every
    # day.  GDAL here lets the NaNs propagate (any NaN neighbour -> NaN), a cheaper rule.
    lat, lon = source_axes(0.1)
    x = source_values(days, lat, lon)
    x[np.random.default_rng(1).random(x.shape) < 0.05] = np.nan
    for method in ("bilinear", "cubic"):
        rg = Regridder(lat, lon, GRID, method)
        t_ours = best_time(partial(rg, x, threads=threads), repeat=repeat)
        t_gdal = best_time(
            partial(gdal_reproject, x, lat, lon, method, threads, nodata=True), repeat=repeat
        )
        bench.add(
            f"{method} 0.1 deg -> 0.01 deg, 5% NaN",
            "Mcell/s",
            ours=cells / t_ours / 1e6,
            reference=cells / t_gdal / 1e6,
            reference_name="GDAL (rioxarray reproject, NaN propagates)",
            threads=threads,
        )


def year_memory_child(days: int, threads: int) -> dict:
    """Downscale a synthetic full-size year as the downscale rule does; report peak RSS."""
    import dask
    import pandas as pd
    import xarray as xr

    from gridfuse.io import write_netcdf
    from gridfuse.regrid import regrid

    lat, lon = source_axes(0.1)
    times = pd.date_range("2020-01-01", periods=days, freq="D")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "daily.nc"
        ds = xr.Dataset(
            {"precip": (("time", "lat", "lon"), source_values(days, lat, lon))},
            coords={"time": times, "lat": lat, "lon": lon},
        )
        write_netcdf(ds, src)
        del ds
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            with dask.config.set(scheduler="threads", num_workers=threads):
                daily = xr.open_dataset(src, chunks={"time": 32})
                out = regrid(daily, GRID, "nearest")
                write_netcdf(out, Path(tmp) / "downscaled.nc", complevel=1)
            seconds = time.perf_counter() - t0
        size = (Path(tmp) / "downscaled.nc").stat().st_size
    return {
        "peak_rss_mb": max(mem.peak_mb, peak_rss_mb()),
        "delta_mb": mem.delta_mb,
        "seconds": seconds,
        "file_mb": size / 2**20,
        "cells": days * GRID.size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=32, help="days per throughput run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--year-days", type=int, default=365, help="days of the memory run")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        print(json.dumps(year_memory_child(args.year_days, args.threads)))
        return

    bench = Bench("regrid")
    print(f"target {GRID.describe()}, {args.days} days, {args.threads} threads", flush=True)
    throughput(bench, args.days, args.threads, args.repeat)
    cmd = [sys.executable, __file__, "--memory-child", "--year-days", str(args.year_days)]
    cmd += ["--threads", str(args.threads)]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    bench.add(
        f"peak RSS, downscale {args.year_days}x{GRID.nlat}x{GRID.nlon} (nearest, to NetCDF)",
        "MB",
        ours=res["peak_rss_mb"],
        reference=MEMORY_BUDGET_MB,
        reference_name="budget",
        higher_is_better=False,
        rss_increase_mb=round(res["delta_mb"], 1),
    )
    bench.add(
        f"downscale {args.year_days}-day year incl. NetCDF write",
        "Mcell/s",
        ours=res["cells"] / res["seconds"] / 1e6,
        seconds=round(res["seconds"], 2),
        file_mb=round(res["file_mb"], 1),
    )
    bench.write()


if __name__ == "__main__":
    main()
