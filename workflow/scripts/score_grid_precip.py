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
import pandas as pd

from gridfuse.evaluate import evaluate_grid, fit_baseline
from gridfuse.grid import Grid
from gridfuse.io import atomic_path, read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.models.registry import make
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

    ps = PatchSampler.open(snakemake.input.patches)
    c = ps.x.shape[2] // 2
    centre = ps.x[:, :, c, c, :]
    fit = np.flatnonzero(ps.roles == "train")
    stack = np.stack([fields[s] for s in srcs], axis=-1)
    for name in p.linear:
        model, _ = fit_baseline(name, centre, ps.y, ps.channels, fit, srcs)
        fields[name] = np.stack([model.predict(day) for day in stack]).astype("f4")

    grid = Grid.from_config(p.grid)
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    pos = ps.times.get_indexer(pd.DatetimeIndex(truth["time"].values))
    for name in p.gauge_only:
        gi = make("precip", name, min_gauges=p.min_gauges).fit(
            ps.lat[fit], ps.lon[fit], ps.y[fit].T
        )
        values = gi.predict(
            ps.lat[fit], ps.lon[fit], ps.y[fit][:, pos].T, lat2.ravel(), lon2.ravel()
        )
        fields[name] = np.maximum(values, 0.0).reshape(truth.shape)

    stats = evaluate_grid(truth.values, fields, thresholds=p.thresholds)
    stats.insert(3, "year", p.year)
    with atomic_path(snakemake.output.stats, suffix=".csv") as tmp:
        stats.to_csv(tmp, index=False)


main()
