"""OSSE scores of one year on the whole grid: the product, each raw source, the linear
merges (weights fitted on the training stations only) and the gauge-only interpolations
(idw, ok: the training gauges' daily values) against the truth, every cell and day.

Inputs: ``product/{year}.nc``, ``truth/{year}.nc``, the year's downscaled sources,
``samples/patches.nc`` (station-cell values for the linear fits, the training gauges).
Output: ``evaluation/grid/{year}.csv``: additive statistics per model (combined over years
by ``cross_validate_precip``).
"""

from pathlib import Path

import numpy as np

from gridfuse.evaluate import baseline_grids, evaluate_grid
from gridfuse.grid import Grid
from gridfuse.io import atomic_path, read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.samples import PatchSampler


def main() -> None:
    from_snakemake(snakemake)
    p = snakemake.params
    srcs = list(p.sources)

    with read_netcdf(snakemake.input.truth, load=True) as ds:
        truth = ds["precip"]
    if "mask" in snakemake.input.keys():  # cells outside the domain are not scored
        truth = truth.where(read_mask(snakemake.input.mask))
    with read_netcdf(snakemake.input.product, load=True) as ds:
        product = ds["precip"].sel(time=truth["time"])
    fields = {"product": product.values}
    for s in srcs:
        path = next(f for f in snakemake.input[s] if Path(f).stem == str(p.year))
        with read_netcdf(path, load=True) as ds:
            fields[s] = ds["precip"].sel(time=truth["time"]).values

    fields |= baseline_grids(
        PatchSampler.open(snakemake.input.patches),
        np.stack([fields[s] for s in srcs], axis=-1),
        srcs,
        truth["time"].values,
        Grid.from_config(p.grid),
        linear=p.linear,
        gauge_only=p.gauge_only,
        min_gauges=p.min_gauges,
    )

    stats = evaluate_grid(truth.values, fields, thresholds=p.thresholds)
    stats.insert(3, "year", p.year)
    with atomic_path(snakemake.output.stats, suffix=".csv") as tmp:
        stats.to_csv(tmp, index=False)


main()
