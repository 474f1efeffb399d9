"""Daily precipitation product of one year: the variant chosen by inner site CV.

Inputs: the downscaled files of the year's source-availability set (this year and its
neighbours, for the day windows at the year's edges), ``static.nc``, the year's networks
``model/mpfm/{set}.pt`` and ``model/mpfm_g/{set}.pt``, the product spec
``model/product/{set}.json`` and ``samples/patches.nc`` (the training gauges' values and
positions).  Output: ``product/{year}.nc`` (CF, mm/day, float32, compressed, provenance).
"""

from functools import partial

import pandas as pd
import torch

from gridfuse.gauge_fusion import load_product, product_blocks, training_gauges
from gridfuse.grid import Grid
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.predict import grid_inputs, source_fields, static_layers, write_product, year_days


def main() -> None:
    from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p, inp = snakemake.params, snakemake.input
    grid = Grid.from_config(p.grid)
    srcs = list(p.sources)
    spec, models = load_product(inp.spec, {"mpfm": inp.mpfm, "mpfm_g": inp.mpfm_g}, srcs)
    fields = source_fields({s: inp[s] for s in srcs}, p.year, grid, "precip")
    read_inputs = partial(
        grid_inputs,
        fields=fields,
        static=static_layers(inp.static),
        grid=grid,
        period=pd.date_range(p.start, p.end),
    )
    gauges, at = training_gauges(inp.patches, grid, spec)
    days = year_days(p.start, p.end, p.year)
    blocks = product_blocks(
        spec,
        models,
        read_inputs,
        gauges,
        at["row"],
        at["col"],
        at["lat"],
        at["lon"],
        days,
        tile=p.tile,
        time_block=p.days,
        device=p.device,
        precision=p.precision,
        mem_mb=p.mem_mb,
        mask=read_mask(inp.mask, grid) if "mask" in inp.keys() else None,
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
            "model_files": f"{inp.mpfm} {inp.mpfm_g} {inp.spec}",
        },
    )


main()
