"""Tiled gridded inference of the fusion networks, with bounded memory.

The product is computed block by block: ``time_block`` days at a time, the inputs of those
days plus the ``window // 2`` days either side are read for the whole grid (from yearly
files, so windows cross year boundaries) -- the next block in a background thread while
this one is predicted.  Each block goes to the device once (pinned memory, asynchronous
copy on CUDA) and is standardized there and padded with the network's receptive radius
(zeros = NaN after standardization, as the grid-edge patches of ``patches.nc`` are NaN).
Tiles of ``tile x tile`` cells with that halo are cut as views, and the ``window``-day cubes
of a tile are views too (``unfold`` over time): no input day is copied once per window.
The number of day windows per forward pass comes from a memory budget.  Each tile's output
is exactly what the network gives at the centre of a station patch (the network is unpadded
in space).  Tiles outside the domain mask are skipped.  Blocks are written to the NetCDF
file as they are done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .daily import product_days
from .grid import Grid, tile_slices
from .io import is_absent, read_netcdf, write_netcdf_blocks
from .models.train import FusionModel, resolve_device
from .quality import source_flags

logger = logging.getLogger(__name__)

__all__ = [
    "YearlyFields",
    "availability_key",
    "available_sources",
    "source_fields",
    "static_layers",
    "year_days",
    "grid_inputs",
    "PRECISIONS",
    "precision_mode",
    "day_windows",
    "tile_slices",
    "batch_days",
    "CPU_BUDGET_MB",
    "predict_memory_mb",
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


def source_fields(
    files: Mapping[str, Sequence[str | os.PathLike]], year: int, grid: Grid, variable: str
) -> dict[str, YearlyFields]:
    """The yearly fields of each source, from its per-year files named ``<year>.nc``.

    ``files``: ``{source: [paths]}`` (the year and its neighbours, for the day windows at the
    year's edges).  Every source must have a real (not absent) file for ``year``: the error
    names the sources that have one, since a mismatch means the configured coverage
    (``first_year``/``last_year``) and the downscaled files disagree.
    """
    fields, this_year = {}, {}
    for source, paths in files.items():
        by_year = {int(Path(f).stem): f for f in paths}
        if int(year) not in by_year:
            raise ValueError(f"{source}: no file for {year} among {sorted(map(str, paths))}")
        this_year[source] = by_year[int(year)]
        fields[source] = YearlyFields(by_year, grid, variable)
    have = available_sources(this_year)
    if have != list(files):
        raise ValueError(
            f"{year}: downscaled files present for {have}, but the configured coverage "
            f"expects {list(files)}; check first_year/last_year"
        )
    return fields


def static_layers(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The 2-D layers of a ``static.nc`` as float32 arrays, by name."""
    with read_netcdf(path, load=True) as ds:
        return {v: ds[v].values.astype("f4") for v in ds.data_vars if ds[v].ndim == 2}


def year_days(start, end, year: int) -> pd.DatetimeIndex:
    """The days of ``year`` inside the period ``start..end`` (inclusive): the year's
    :func:`gridfuse.daily.product_days`."""
    days = product_days(start, end)
    return days[days.year == int(year)]


def grid_inputs(
    channels: Sequence[str],
    fields: Mapping[str, YearlyFields],
    static: Mapping[str, np.ndarray],
    grid: Grid,
    period: pd.DatetimeIndex | None = None,
) -> Callable[[pd.DatetimeIndex], np.ndarray]:
    """A reader ``days -> (n_days, n_channels, nlat, nlon)`` for the model's channels.

    Dynamic channels come from ``fields``; static ones from ``static`` (2-D arrays), with
    ``lat`` and ``lon`` computed from the grid when not given.  With ``period``, days outside
    it read as missing (NaN in every channel): the sources outside the product period are
    not used.
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
        if period is not None:
            out[~days.isin(period)] = np.nan
        return out

    return read


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def precision_mode(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """Numerics of inference on ``device``: ``fp32``, ``tf32`` (CUDA tensor cores with a
    10-bit mantissa in matrix products and convolutions) or ``bf16`` (autocast).

    ``fp32`` switches TF32 *off* for the duration (PyTorch enables it for cuDNN
    convolutions by default), so it is the reference the other two are compared with.
    The previous flags are restored on exit.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise ValueError("precision 'tf32' needs a CUDA device")
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def day_windows(block: torch.Tensor, window: int) -> torch.Tensor:
    """The ``window``-day cubes of a ``(days, C, H, W)`` block as a view, no copy.

    Returns ``(days - window + 1, window, C, H, W)``: cube ``d`` holds days
    ``d .. d + window - 1``.  Built with ``unfold`` on whatever device ``block`` lives on,
    so each input day is transferred once, not once per window it belongs to.
    """
    if block.shape[0] < window:
        raise ValueError(f"a block of {block.shape[0]} days has no {window}-day window")
    return block.unfold(0, window, 1).permute(0, 4, 1, 2, 3)


def batch_days(
    model: FusionModel, tile_cells: int, budget_bytes: float, *, precision: str = "fp32"
) -> int:
    """Day windows per forward pass so that activations of one batch fit ``budget_bytes``.

    ``tile_cells`` is the area of a tile *with* its halo.  The per-cell cost is the
    network's own estimate (:meth:`~gridfuse.models.mpfm.MPFM.activation_bytes`), halved
    for bf16.  At least one day.
    """
    per = model.nets[0].activation_bytes() * (0.5 if precision == "bf16" else 1.0)
    return max(1, int(budget_bytes // (per * max(1, tile_cells))))


#: CPU activation budget (MB) when none is given: 2 day windows per pass at tile 128.
#: Small passes stay in the caches and in the allocator's heap: at 5 windows per pass
#: (512 MB) the activations are fresh ``mmap`` pages every pass (about 140,000 page faults
#: per pass on one EPYC core) and a cell-day cost 1.2-1.6x the CPU time it costs at 2
#: (``benchmarks/mpfm_predict.py``, same-run SGEMM ratio 0.40 -> 0.48)
CPU_BUDGET_MB = 256.0


def _free_bytes(dev: torch.device, mem_mb: float) -> float:
    """Activation budget: ``mem_mb`` when given; on CUDA half of the free memory; else
    :data:`CPU_BUDGET_MB`."""
    if mem_mb and mem_mb > 0:
        return float(mem_mb) * 2**20
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return 0.5 * free
    return CPU_BUDGET_MB * 2**20


def predict_memory_mb(
    nlat: int,
    nlon: int,
    n_channels: int,
    *,
    time_block: int,
    window: int,
    radius: int,
    budget_mb: float = CPU_BUDGET_MB,
    prefetch: bool = True,
    device: str = "cpu",
) -> float:
    """Peak host memory (MB) of :func:`predict_grid` above the interpreter and the model.

    One block of raw inputs is ``(time_block + window - 1) x n_channels`` grids.  On the
    CPU the block being predicted is standardized in place (plus a copy of the log1p
    channels, at most the block) and halo-padded (a second block), while the next one is
    read (a third, with ``prefetch``); the activations stay within ``budget_mb``; the
    output block is ``time_block`` grids.  On CUDA the host holds the raw blocks (pinned)
    and the output only.  The cost model of the predict jobs uses this.
    """
    cells = (nlat + 2 * radius) * (nlon + 2 * radius)
    block = (time_block + window - 1) * n_channels * cells * 4 / 2**20
    out = time_block * nlat * nlon * 4 / 2**20
    raw_blocks = 2 if prefetch else 1
    if device == "cpu":
        return (raw_blocks + 2) * block + budget_mb + 2 * out
    return raw_blocks * block + 2 * out


def _passes(n: int, batch: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the fewest passes of at most ``batch`` over ``n`` items, with
    sizes differing by at most one (16 days at 5 a pass: 4, 4, 4, 4, not 5, 5, 5, 1: a pass
    of one day window takes PyTorch's slow non-oneDNN ``Conv3d`` on the CPU)."""
    k = -(-n // max(1, batch))
    edges = [i * n // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def predict_tiles(
    model: FusionModel,
    xs: torch.Tensor | np.ndarray,
    *,
    tile: int = 128,
    device: torch.device | str = "cpu",
    batch: int | None = None,
    mask: np.ndarray | None = None,
    precision: str = "fp32",
    mem_mb: float = 0,
) -> torch.Tensor:
    """Predict every cell of every day from a standardized, halo-padded, time-padded block.

    Parameters
    ----------
    xs : Tensor or ndarray ``(n_days + window - 1, C, nlat + 2r, nlon + 2r)``
        Standardized inputs with ``window // 2`` extra days at each end and a halo of the
        model's radius ``r`` cells on every side, ideally already on ``device``.
    batch : int, optional
        Most day windows per forward pass; default from the memory budget
        (:func:`batch_days`).  The passes over a tile's days are as even as possible.
    mask : bool ndarray ``(nlat, nlon)``, optional
        Cells to predict (tiles without any are skipped); the others are NaN.
    mem_mb : float
        Activation budget in MB (0: half the free CUDA memory, or :data:`CPU_BUDGET_MB`).

    Returns
    -------
    Tensor ``(n_days, nlat, nlon)`` float32 on ``device``, mm/day.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    xs = torch.as_tensor(xs).to(dev)
    w, r = model.window, model.radius
    n_days = xs.shape[0] - w + 1
    nlat, nlon = xs.shape[2] - 2 * r, xs.shape[3] - 2 * r
    if batch is None:
        edge = min(tile, max(nlat, nlon)) + 2 * r
        batch = batch_days(model, edge * edge, _free_bytes(dev, mem_mb), precision=precision)
    with torch.inference_mode(), precision_mode(dev, precision):
        out = torch.full((n_days, nlat, nlon), float("nan"), dtype=torch.float32, device=dev)
        for si, sj in tile_slices(nlat, nlon, tile, mask):
            sub = xs[:, :, si.start : si.stop + 2 * r, sj.start : sj.stop + 2 * r]
            cubes = day_windows(sub, w)
            for d0, d1 in _passes(n_days, batch):
                out[d0:d1, si, sj] = model.predict_standardized(cubes[d0:d1]).float()
        if mask is not None:
            out[:, ~torch.as_tensor(mask, device=dev)] = float("nan")
    return out


def _to_host(t: torch.Tensor) -> np.ndarray:
    """A device tensor as a NumPy array (through pinned memory from CUDA)."""
    if t.device.type == "cpu":
        return t.numpy()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()
    return host.numpy()


def predict_grid(
    model: FusionModel,
    read: Callable[[pd.DatetimeIndex], np.ndarray],
    days: pd.DatetimeIndex,
    *,
    tile: int = 128,
    time_block: int = 16,
    device: str = "auto",
    mask: np.ndarray | None = None,
    precision: str = "fp32",
    mem_mb: float = 0,
    prefetch: bool = True,
    flag_sources: Sequence[str] | None = None,
) -> Iterator[tuple]:
    """Yield ``(day_slice, values (n, nlat, nlon))`` blocks of the gridded prediction.

    ``read(days)`` returns raw inputs ``(n, C, nlat, nlon)`` in the model's channel order
    (see :func:`grid_inputs`); days outside the inputs' period must come back NaN.

    Each block of ``time_block`` days (plus the ``window // 2`` days either side) is read
    once, moved to the device once (through pinned memory, asynchronously, on CUDA) and
    standardized and halo-padded there; the day windows are views of it
    (:func:`day_windows`).  With ``prefetch`` the next block is read in a background thread
    while this one is predicted, so at most two blocks of raw inputs are alive.
    ``mask`` (True = inside) restricts the prediction; cells outside are NaN.
    ``precision`` and ``mem_mb`` are as in :func:`predict_tiles`.

    With ``flag_sources`` (channels of the model) each block is ``(day_slice, values,
    flags)``: the quality layer of :func:`gridfuse.quality.source_flags`, bit *i* set where
    ``flag_sources[i]`` had a finite raw value on the day (a gap is filled with the training
    mean, so the flag shows where the prediction went without that source); 0 outside
    ``mask``.  The flags come from the same raw block as the prediction, in the reader
    thread.
    """
    dev = resolve_device(device)
    for net in model.nets:
        net.to(dev).eval()
    days = pd.DatetimeIndex(days)
    h, r = model.window // 2, model.radius
    starts = list(range(0, len(days), time_block))

    def load(k0: int) -> tuple[torch.Tensor, np.ndarray | None]:
        k1 = min(len(days), k0 + time_block)
        span = pd.date_range(days[k0] - pd.Timedelta(days=h), days[k1 - 1] + pd.Timedelta(days=h))
        block = np.ascontiguousarray(read(span), dtype="f4")
        flags = None
        if flag_sources is not None:
            flags = source_flags(block[h : h + k1 - k0], model.channels, flag_sources, axis=1)
            if mask is not None:
                flags[:, ~mask] = 0
        raw = torch.from_numpy(block)
        return (raw.pin_memory() if dev.type == "cuda" else raw), flags

    t_start, done = time.perf_counter(), 0
    pool = ThreadPoolExecutor(max_workers=1) if prefetch and len(starts) > 1 else None
    try:
        nxt = pool.submit(load, starts[0]) if pool else None
        for i, k0 in enumerate(starts):
            raw, flags = nxt.result() if pool else load(k0)
            if pool and i + 1 < len(starts):
                nxt = pool.submit(load, starts[i + 1])
            k1 = min(len(days), k0 + time_block)
            xs = model.standardizer.transform_tensor(
                raw.to(dev, non_blocking=True), dim=1, inplace=True
            )
            del raw
            xs = torch.nn.functional.pad(xs, (r, r, r, r))
            out = _to_host(
                predict_tiles(
                    model, xs, tile=tile, device=dev, mask=mask, precision=precision, mem_mb=mem_mb
                )
            )
            del xs
            done += k1 - k0
            elapsed = time.perf_counter() - t_start
            logger.info(
                "predicted %s..%s (%d/%d days, %.0fs, %.0f cell-days/s): mean %.3f mm/day, "
                "max %.1f",
                days[k0].date(),
                days[k1 - 1].date(),
                k1,
                len(days),
                elapsed,
                done * out[0].size / max(elapsed, 1e-9),
                float(np.nanmean(out)) if np.isfinite(out).any() else float("nan"),
                float(np.nanmax(out)) if np.isfinite(out).any() else float("nan"),
            )
            yield (slice(k0, k1), out) if flags is None else (slice(k0, k1), out, flags)
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


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
    utc_start_hour: int | None = None,
    flag_sources: Sequence[str] | None = None,
) -> Path:
    """Write a ``(time, lat, lon)`` CF NetCDF4 product block by block, atomically.

    The layout of :func:`gridfuse.io.write_netcdf_blocks` (float32, zlib, one-day chunks of
    up to 512 x 512 cells, CF and provenance attributes, ``time_bnds`` of the day window
    ``utc_start_hour``) on the product ``grid``.  With ``flag_sources`` the blocks are
    ``(slice, values, flags)`` and the file gets the quality layer (:mod:`gridfuse.quality`).
    """
    return write_netcdf_blocks(
        path,
        variable,
        ((b[0], np.asarray(b[1], dtype="f4"), *b[2:]) for b in blocks),
        times=pd.DatetimeIndex(days).values,
        lat=grid.lat,
        lon=grid.lon,
        cfg=cfg,
        sources=sources,
        attrs=attrs,
        complevel=complevel,
        utc_start_hour=utc_start_hour,
        flag_sources=flag_sources,
        what="MPFM prediction",
    )
