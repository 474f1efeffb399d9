"""Gridded SO2 prediction: the model applied to every cell of the grid in tiles, one time
block at a time, streamed to the yearly NetCDF and (optionally) one COG per day."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from threadpoolctl import threadpool_limits

from ...features.table import tile_frame
from ...grid import tile_slices
from .estimator import SO2Model

logger = logging.getLogger(__name__)

__all__ = [
    "predict_tile",
    "predict_blocks",
    "predict_year",
    "predict_year_to_netcdf",
]


def predict_tile(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    time_slice: slice,
    row_slice: slice,
    col_slice: slice,
    inside: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Prediction ``(time, rows, cols)`` of one tile (float32).

    With ``inside`` (bool ``(rows, cols)``, the domain mask on the tile) only the cells
    inside are built and predicted; the others are NaN. ``threads`` overrides the model's
    threads for this tile (1 when tiles run in parallel).
    """
    nt = len(dynamic["time"].values[time_slice])
    r0, r1, _ = row_slice.indices(dynamic.sizes["lat"])
    c0, c1, _ = col_slice.indices(dynamic.sizes["lon"])
    out = np.full((nt, r1 - r0, c1 - c0), np.nan, dtype=np.float32)
    if inside is not None and not inside.any():
        return out
    fr = tile_frame(
        dynamic, static, model.features, time_slice, row_slice, col_slice, inside=inside
    )
    pred = model.predict(fr, threads=threads)
    if inside is None:
        out[:] = pred.reshape(out.shape)
    else:
        out[:, inside] = pred.reshape(nt, -1)
    return out


def predict_blocks(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    *,
    tile: int = 256,
    time_block: int = 8,
    mask: np.ndarray | None = None,
    threads: int = 1,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Predict the grid, ``time_block`` days at a time, in ``tile x tile`` tiles.

    Parameters
    ----------
    mask : bool array (lat, lon), optional
        The domain: cells outside are never built or predicted and are NaN; tiles wholly
        outside are skipped.
    threads : int
        Tiles predicted side by side (each single-threaded); the numpy kernels and
        LightGBM release the GIL, so threads scale the feature building too.

    Yields ``(time_slice, array (days, lat, lon))``; memory is bounded by one time block of
    the grid plus ``threads`` tiles' feature matrices.
    """
    nt, ny, nx = dynamic.sizes["time"], dynamic.sizes["lat"], dynamic.sizes["lon"]
    if (ny, nx) != model.grid.shape:
        raise ValueError(f"fields are {(ny, nx)} cells; the model's grid is {model.grid.shape}")
    if mask is not None and mask.shape != (ny, nx):
        raise ValueError(f"the mask has {mask.shape} cells; the grid has {(ny, nx)}")
    jobs = tile_slices(ny, nx, tile, mask)
    cells = int(mask.sum()) if mask is not None else ny * nx
    threads = max(1, int(threads))
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(jobs) > 1 else None
    # tiles in parallel: BLAS single-threaded inside each (threads there would only spin)
    limits = threadpool_limits(1, user_api="blas") if pool is not None else None
    t0 = time.perf_counter()
    try:
        for a in range(0, nt, time_block):
            ts = slice(a, min(a + time_block, nt))

            def one(rc, ts=ts):
                rs, cs = rc
                inside = None if mask is None else mask[rs, cs]
                th = 1 if pool is not None else threads
                return predict_tile(model, dynamic, static, ts, rs, cs, inside, th)

            block = np.full((ts.stop - ts.start, ny, nx), np.nan, dtype=np.float32)
            parts = pool.map(one, jobs) if pool is not None else map(one, jobs)
            step = max(1, len(jobs) // 10)  # progress about every tenth of the block's tiles
            for i, ((rs, cs), arr) in enumerate(zip(jobs, parts), 1):
                block[:, rs, cs] = arr
                if i % step == 0 and i < len(jobs):
                    logger.info(
                        "days %d-%d: %d of %d tiles (%.0f s)",
                        ts.start + 1,
                        ts.stop,
                        i,
                        len(jobs),
                        time.perf_counter() - t0,
                    )
            rate = cells * ts.stop / max(time.perf_counter() - t0, 1e-9)
            logger.info(
                "predicted days %d-%d of %d (%d tiles, %d cells inside; %.0f cell-days/s)",
                ts.start + 1,
                ts.stop,
                nt,
                len(jobs),
                cells,
                rate,
            )
            yield ts, block
    finally:
        if pool is not None:
            pool.shutdown()
            limits.restore_original_limits()


def _blocks_with_geotiffs(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    *,
    geotiff_dir: str | os.PathLike | None,
    gzip: bool,
    **predict_kw,
) -> Iterator[tuple[slice, np.ndarray]]:
    """:func:`predict_blocks`, writing each block's days as COGs (NaN = nodata) before
    yielding it."""
    from ...io import write_geotiff
    from ...kinds import get_kind

    kind = get_kind("so2")
    times = pd.DatetimeIndex(dynamic["time"].values)
    for ts, block in predict_blocks(model, dynamic, static, **predict_kw):
        if geotiff_dir is not None:
            for i, day in enumerate(times[ts]):
                write_geotiff(
                    block[i],
                    Path(geotiff_dir) / kind.geotiff_name(day),
                    grid=model.grid,
                    gz=gzip,
                    tags={"units": kind.units, "date": f"{day:%Y-%m-%d}"},
                )
        yield ts, block


def predict_year(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    *,
    geotiff_dir: str | os.PathLike | None = None,
    gzip: bool = False,
    **predict_kw,
) -> xr.DataArray:
    """Predict every day of ``dynamic`` over the grid; optionally one COG per day.

    ``predict_kw`` go to :func:`predict_blocks` (``tile``, ``time_block``, ``mask``,
    ``threads``). GeoTIFFs (``so2_YYYYMMDD.tif``, ``.gz`` appended with ``gzip``) are
    written as each time block finishes. Returns the ``so2`` DataArray ``(time, lat, lon)``
    in ug/m3 (the whole period in memory: for large grids use
    :func:`predict_year_to_netcdf`).
    """
    times = pd.DatetimeIndex(dynamic["time"].values)
    out = np.empty((len(times), *model.grid.shape), dtype=np.float32)
    for ts, block in _blocks_with_geotiffs(
        model, dynamic, static, geotiff_dir=geotiff_dir, gzip=gzip, **predict_kw
    ):
        out[ts] = block
    return xr.DataArray(
        out,
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": model.grid.lat, "lon": model.grid.lon},
        name="so2",
    )


def predict_year_to_netcdf(
    model: SO2Model,
    dynamic: xr.Dataset,
    static: xr.Dataset,
    path: str | os.PathLike,
    *,
    geotiff_dir: str | os.PathLike | None = None,
    gzip: bool = False,
    cfg: Mapping | None = None,
    sources=(),
    utc_start_hour: int | None = None,
    flag_groups: Mapping[str, list[str]] | None = None,
    **predict_kw,
) -> Path:
    """:func:`predict_year` streamed to the CF NetCDF ``path`` one time block at a time.

    Memory is one block of the grid (``time_block`` days) plus the tiles' features in
    flight, not the year (China at 0.01 deg: 0.7 GB per 8-day block instead of 33 GB per
    year). Cells outside the ``mask`` are NaN (the NetCDF fill value, GeoTIFF nodata).
    ``utc_start_hour`` (the day window) gives the file its ``time_bnds``; ``flag_groups``
    (source -> its variables in ``dynamic``) adds the quality layer: per cell-day, which
    sources had data (:func:`gridfuse.quality.flags_from_fields`).
    """
    from ...io import write_netcdf_blocks
    from ...quality import flags_from_fields

    blocks = _blocks_with_geotiffs(
        model, dynamic, static, geotiff_dir=geotiff_dir, gzip=gzip, **predict_kw
    )
    if flag_groups:
        names = sorted({v for vs in flag_groups.values() for v in vs})

        def with_flags(blocks):
            for ts, block in blocks:
                fields = {
                    v: dynamic[v].isel(time=ts).transpose("time", "lat", "lon").values
                    for v in names
                }
                yield ts, block, flags_from_fields(fields, flag_groups)

        blocks = with_flags(blocks)
    return write_netcdf_blocks(
        path,
        "so2",
        blocks,
        times=dynamic["time"].values,
        lat=model.grid.lat,
        lon=model.grid.lon,
        cfg=cfg,
        sources=sources,
        utc_start_hour=utc_start_hour,
        flag_sources=list(flag_groups) if flag_groups else None,
        what="SO2 LightGBM prediction",
    )
