"""Daily precipitation product of one year by tiled MPFM inference.

Inputs: the downscaled files of the year's source-availability set (this year and its
neighbours, for the day windows at the year's edges), ``static.nc`` and the year's model.
Output: ``product/{year}.nc`` (CF, mm/day, float32, compressed, provenance attributes).
"""

from pathlib import Path

import pandas as pd
import torch

from gridfuse.grid import Grid
from gridfuse.io import read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.models.train import FusionModel
from gridfuse.predict import (
    YearlyFields,
    available_sources,
    grid_inputs,
    predict_grid,
    write_product,
)

logger = from_snakemake(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
grid = Grid.from_config(p.grid)
model = FusionModel.load(snakemake.input.model)
srcs = list(p.sources)
if model.meta.get("sources", srcs) != srcs:
    raise ValueError(
        f"{snakemake.input.model} was trained on {model.meta['sources']}, year needs {srcs}"
    )

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

start, end = pd.Timestamp(p.start), pd.Timestamp(p.end)
days = pd.date_range(max(start, pd.Timestamp(p.year, 1, 1)), min(end, pd.Timestamp(p.year, 12, 31)))
period = pd.date_range(start, end)
read_all = grid_inputs(model.channels, fields, static, grid)


def read(span):
    """Inputs of the span; days outside the product period are missing (NaN)."""
    out = read_all(span)
    out[~span.isin(period)] = float("nan")
    return out


blocks = predict_grid(
    model,
    read,
    days,
    tile=p.tile,
    time_block=p.days,
    device=p.device,
    precision=p.precision,
    mem_mb=p.mem_mb,
)
write_product(
    snakemake.output.product,
    blocks,
    grid,
    days,
    cfg=p.cfg,
    sources=srcs,
    attrs={
        "model": "mpfm",
        "model_file": str(snakemake.input.model),
        "receptive_radius": model.radius,
    },
)
