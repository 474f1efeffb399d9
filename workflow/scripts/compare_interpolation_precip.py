"""Score each regridding method of each source at the stations.

Inputs: ``daily/{source}/{year}.nc`` of every source and year, ``stations/stations.csv``,
``stations/daily.parquet``.  Output: ``evaluation/interpolation.csv`` with columns
``source, method, metric, value, n`` (RMSE, MAE, CC, RB over all station-days).
"""

from pathlib import Path

import pandas as pd

from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.samples import interpolation_scores


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    files = {s: [f for f in snakemake.input.daily if Path(f).parent.name == s] for s in p.sources}
    stations = pd.read_csv(snakemake.input.stations, dtype={"station": str})
    observations = pd.read_parquet(snakemake.input.observations)

    scores = interpolation_scores(
        files,
        stations,
        observations,
        Grid.from_config(p.grid),
        list(p.methods),
        variable=p.variable,
    )
    with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
        scores.to_csv(tmp, index=False)
    best = scores[scores["metric"] == "rmse"].sort_values("value").groupby("source").head(1)
    logger.info("lowest RMSE per source:\n%s", best.to_string(index=False))


main()
