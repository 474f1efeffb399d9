"""Tiled gridded inference of the fusion networks, with bounded memory.

The product is computed block by block: ``time_block`` days at a time, the inputs of those
days plus the ``window // 2`` days either side are read for the whole grid (from yearly
files, so windows cross year boundaries), standardized once, padded with the network's
receptive radius (zeros = NaN after standardization, as the grid-edge patches of
``patches.nc`` are NaN), and cut into ``tile x tile`` tiles with that halo.  Each tile's
output is exactly what the network gives at the centre of a station patch (the network is
unpadded in space).  Blocks are written to the NetCDF file as they are done.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .grid import Grid
from .io import is_absent, write_netcdf_blocks
from .models.train import FusionModel, resolve_device

logger = logging.getLogger(__name__)

__all__ = [
    "YearlyFields",
    "availability_key",
    "available_sources",
    "grid_inputs",
    "predict_tiles",
    "predict_grid",
    "write_product",
]


def availability_key(sources: Sequence[str]) -> str:
    """File-name key of a source-availability set (sources in the given order, '-'-joined)."""
    if not sources:
        raise ValueError("a source-availability set needs at least one source")
    return "-".join(sources)


def available_sources(files: Mapping[str, str | os.PathLike]) -> list[str]:
    """Sources (in the mapping's order) whose file is not an absent marker."""
    return [s for s, p in files.items() if not is_absent(p)]


class YearlyFields:
    """Daily fields of one variable from per-year files, read by arbitrary day ranges.

    Parameters
    ----------
    files : mapping year -> path
        Yearly NetCDF files on the target grid; absent markers and missing years give NaN.
    grid : Grid
        The target grid (files are checked against it).
    variable : str
        Variable to read.
    """

    def __init__(self, files: Mapping[int, str | os.PathLike], grid: Grid, variable: str):
        self.grid, self.variable = grid, variable
        self._ds: dict[int, xr.DataArray | None] = {}
        for year, path in files.items():
            ds = xr.open_dataset(path, engine="netcdf4")
            if is_absent(ds):
                ds.close()
                self._ds[int(year)] = None
                continue
            if variable not in ds:
                raise ValueError(f"{path}: no variable {variable!r} (has {list(ds.data_vars)})")
            da = ds[variable]
            if da.shape[-2:] != grid.shape:
                raise ValueError(f"{path}: {variable} has shape {da.shape}, grid is {grid.shape}")
            self._ds[int(year)] = da

    def read(self, days: pd.DatetimeIndex) -> np.ndarray:
        """``(len(days), nlat, nlon)`` float32, NaN where a day has no data."""
        out = np.full((len(days),) + self.grid.shape, np.nan, dtype="f4")
        for year in np.unique(days.year):
            da = self._ds.get(int(year))
            if da is None:
                continue
            sel = np.flatnonzero(days.year == year)
            times = pd.DatetimeIndex(da["time"].values).normalize()
            pos = times.get_indexer(days[sel].normalize())
            have = pos >= 0
            if have.any():
                lo, hi = pos[have].min(), pos[have].max() + 1
                block = da.isel(time=slice(lo, hi)).values.astype("f4")
                out[sel[have]] = block[pos[have] - lo]
        return out

    def close(self) -> None:
        for da in self._ds.values():
            if da is not None:
                da.close()


def grid_inputs(
    channels: Sequence[str],
    fields: Mapping[str, YearlyFields],
    static: Mapping[str, np.ndarray],
    grid: Grid,
) -> Callable[[pd.DatetimeIndex], np.ndarray]:
    """A reader ``days -> (n_days, n_channels, nlat, nlon)`` for the model's channels.

    Dynamic channels come from ``fields``; static ones from ``static`` (2-D arrays), with
    ``lat`` and ``lon`` computed from the grid when not given.
    """
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    static = {"lat": lat2.astype("f4"), "lon": lon2.astype("f4"), **dict(static)}
    for c in channels:
        if c not in fields and c not in static:
            raise ValueError(
                f"channel {c!r} is neither a source ({sorted(fields)}) nor a static layer "
                f"({sorted(static)})"
            )

    def read(days: pd.DatetimeIndex) -> np.ndarray:
        out = np.empty((len(days), len(channels)) + grid.shape, dtype="f4")
        for i, c in enumerate(channels):
            out[:, i] = fields[c].read(days) if c in fields else static[c][None]
        return out

    return read


def predict_tiles(
    model: FusionModel,
    xs: np.ndarray,
    *,
    tile: int = 128,
    device: torch.device | str = "cpu",
    batch_days: int = 8,
) -> np.ndarray:
    """Predict every cell of every day from a standardized, halo-padded, time-padded block.

    Parameters
    ----------
    xs : ndarray ``(n_days + window - 1, C, nlat + 2r, nlon + 2r)``
        Standardized inputs with ``window // 2`` extra days at each end and a halo of the
        model's radius ``r`` cells on every side.

    Returns
    -------
    ndarray ``(n_days, nlat, nlon)`` float32, mm/day.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    w, r = model.window, model.radius
    n_days = xs.shape[0] - w + 1
    nlat, nlon = xs.shape[2] - 2 * r, xs.shape[3] - 2 * r
    out = np.empty((n_days, nlat, nlon), dtype="f4")
    xt = torch.from_numpy(xs)
    with torch.no_grad():
        for i0 in range(0, nlat, tile):
            i1 = min(nlat, i0 + tile)
            for j0 in range(0, nlon, tile):
                j1 = min(nlon, j0 + tile)
                sub = xt[:, :, i0 : i1 + 2 * r, j0 : j1 + 2 * r]
                for d0 in range(0, n_days, batch_days):
                    d1 = min(n_days, d0 + batch_days)
                    cubes = torch.stack([sub[d : d + w] for d in range(d0, d1)]).to(dev)
                    out[d0:d1, i0:i1, j0:j1] = model.predict_standardized(cubes).cpu().numpy()
    return out


def predict_grid(
    model: FusionModel,
    read: Callable[[pd.DatetimeIndex], np.ndarray],
    days: pd.DatetimeIndex,
    *,
    tile: int = 128,
    time_block: int = 16,
    device: str = "auto",
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(day_slice, values (n, nlat, nlon))`` blocks of the gridded prediction.

    ``read(days)`` returns raw inputs ``(n, C, nlat, nlon)`` in the model's channel order
    (see :func:`grid_inputs`); days outside the inputs' period must come back NaN.
    """
    dev = resolve_device(device)
    for net in model.nets:
        net.to(dev).eval()
    days = pd.DatetimeIndex(days)
    h, r = model.window // 2, model.radius
    t_start = time.perf_counter()
    for k0 in range(0, len(days), time_block):
        k1 = min(len(days), k0 + time_block)
        span = pd.date_range(days[k0] - pd.Timedelta(days=h), days[k1 - 1] + pd.Timedelta(days=h))
        raw = read(span)
        xs = model.standardizer.transform(raw, axis=1)
        xs = np.pad(xs, ((0, 0), (0, 0), (r, r), (r, r)))
        out = predict_tiles(model, xs, tile=tile, device=dev)
        logger.info(
            "predicted %s..%s (%d/%d days, %.0fs): mean %.3f mm/day, max %.1f",
            days[k0].date(),
            days[k1 - 1].date(),
            k1,
            len(days),
            time.perf_counter() - t_start,
            float(np.nanmean(out)),
            float(np.nanmax(out)),
        )
        yield slice(k0, k1), out


def write_product(
    path: str | os.PathLike,
    blocks: Iterator[tuple[slice, np.ndarray]],
    grid: Grid,
    days: pd.DatetimeIndex,
    *,
    variable: str = "precip",
    cfg: Mapping | None = None,
    sources: Sequence[str] = (),
    attrs: Mapping | None = None,
    complevel: int = 4,
) -> Path:
    """Write a ``(time, lat, lon)`` CF NetCDF4 product block by block, atomically.

    The layout of :func:`gridfuse.io.write_netcdf_blocks` (float32, zlib, one-day chunks of
    up to 512 x 512 cells, CF and provenance attributes) on the product ``grid``.
    """
    return write_netcdf_blocks(
        path,
        variable,
        ((sl, np.asarray(v, dtype="f4")) for sl, v in blocks),
        times=pd.DatetimeIndex(days).values,
        lat=grid.lat,
        lon=grid.lon,
        cfg=cfg,
        sources=sources,
        attrs=attrs,
        complevel=complevel,
    )
