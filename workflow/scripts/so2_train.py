"""Train the full SO2 LightGBM model on every observed station-day.

Input: the station feature table. Outputs: model.txt (LightGBM), features.npz (stored
random IDs, convolution normalization and kernels), model.json (feature list, settings,
seed, code version).
"""

from pathlib import Path

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.log import from_snakemake
from gridfuse.models.registry import make


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    grid = Grid.from_config(p.grid)
    cfg = FeatureConfig.from_dict(p.features)
    table = pd.read_parquet(snakemake.input.table)
    model = make(
        "so2",
        "lightgbm",
        seed=p.seed,
        threads=snakemake.threads,
        params=p.model,
        features=cfg,
        grid=grid,
    ).fit(table)
    model.save(
        Path(snakemake.output.txt).parent,
        extra={"n_rows": int(table["value"].notna().sum()), "seed": p.seed},
    )
    logger.info("best iteration %d", model.booster.best_iteration)


main()
