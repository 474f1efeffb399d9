"""Daily precipitation product of one year: the variant chosen by inner site CV.

Inputs: the downscaled files of the year's source-availability set (this year and its
neighbours, for the day windows at the year's edges), ``static.nc``, the year's networks
``model/mpfm/{set}.pt`` and ``model/mpfm_g/{set}.pt``, the product spec
``model/product/{set}.json`` and ``samples/patches.nc`` (the training gauges' values and
positions).  Output: ``product/{year}.nc`` (CF, mm/day, float32, compressed, provenance).
"""

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gridfuse.gauge_fusion import GridGaugeFields, ProductSpec, product_blocks
from gridfuse.grid import Grid
from gridfuse.io import read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.models.train import FusionModel
from gridfuse.predict import YearlyFields, available_sources, grid_inputs, write_product


def read_inputs(channels, *, fields, static, grid, period):
    """A reader of the channels; days outside the product period are missing (NaN)."""
    read_all = grid_inputs(channels, fields, static, grid)

    def read(span):
        out = read_all(span)
        out[~span.isin(period)] = np.nan
        return out

    return read


def main() -> None:
    from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    grid = Grid.from_config(p.grid)
    spec = ProductSpec.load(snakemake.input.spec)
    models = {"mpfm": FusionModel.load(snakemake.input.mpfm)}
    models["mpfm_g"] = FusionModel.load(snakemake.input.mpfm_g)
    srcs = list(p.sources)
    for m in models.values():
        if m.meta.get("sources", srcs) != srcs:
            raise ValueError(f"{m.name} was trained on {m.meta['sources']}, year needs {srcs}")

    fields, this_year = {}, {}
    for s in srcs:
        files = {int(Path(f).stem): f for f in snakemake.input[s]}
        this_year[s] = files[p.year]
        fields[s] = YearlyFields(files, grid, "precip")
    if available_sources(this_year) != srcs:
        raise ValueError(
            f"{p.year}: downscaled files present for {available_sources(this_year)}, "
            f"but the configured coverage expects {srcs}; check first_year/last_year"
        )
    with read_netcdf(snakemake.input.static, load=True) as ds:
        static = {v: ds[v].values.astype("f4") for v in ds.data_vars if ds[v].ndim == 2}
    with read_netcdf(snakemake.input.patches) as ds:
        train = ds["role"].values.astype(str) == "train"
        g = {k: ds[k].values[train] for k in ("lat", "lon", "row", "col")}
        gauge_values = ds["y"].values[train].T
        gauge_times = pd.DatetimeIndex(ds["time"].values)

    start, end = pd.Timestamp(p.start), pd.Timestamp(p.end)
    days = pd.date_range(
        max(start, pd.Timestamp(p.year, 1, 1)), min(end, pd.Timestamp(p.year, 12, 31))
    )
    period = pd.date_range(start, end)

    gauges = GridGaugeFields(
        g["lat"], g["lon"], gauge_values, gauge_times, grid, spec.gauge_power, spec.min_gauges
    )
    blocks = product_blocks(
        spec,
        models,
        partial(read_inputs, fields=fields, static=static, grid=grid, period=period),
        gauges,
        g["row"],
        g["col"],
        g["lat"],
        g["lon"],
        days,
        tile=p.tile,
        time_block=p.days,
        device=p.device,
        precision=p.precision,
        mem_mb=p.mem_mb,
        mask=read_mask(snakemake.input.mask, grid) if "mask" in snakemake.input.keys() else None,
        flag_sources=srcs,
    )
    write_product(
        snakemake.output.product,
        blocks,
        grid,
        days,
        cfg=p.provenance,
        sources=srcs,
        flag_sources=srcs,
        utc_start_hour=p.utc_start_hour,
        attrs={
            "model": f"product: {spec.net} + {spec.correction} residual correction",
            "wet_threshold_mm": spec.wet_threshold,
            "model_files": f"{snakemake.input.mpfm} {snakemake.input.mpfm_g} {snakemake.input.spec}",
        },
    )


main()
