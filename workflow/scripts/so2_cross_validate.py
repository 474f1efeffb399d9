"""Scores of the full SO2 model and its baselines, gathered from the CV fold jobs.

Inputs: every fold's out-of-fold predictions (cross_validate_fold_so2) and, for a synthetic
product, each model's osse_grid scores (score_grid_so2). Outputs: scores.csv (model, scheme,
subset, metric, value, n) and all out-of-fold predictions. All stations are CV material (no
SO2 holdout in the record).
"""

import pandas as pd

from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import gather_scores


def main() -> None:
    logger = from_snakemake(snakemake)
    oof = pd.concat([pd.read_parquet(f) for f in snakemake.input.folds], ignore_index=True)
    grid = [pd.read_csv(f) for f in snakemake.input.grid]
    scores = gather_scores(oof, grid)
    with atomic_path(snakemake.output.oof, suffix=".parquet") as tmp:
        oof.to_parquet(tmp, index=False)
    with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
        scores.to_csv(tmp, index=False)
    r2 = scores[(scores.metric == "r2") & (scores.subset == "all")]
    logger.info("R2:\n%s", r2.pivot(index="model", columns="scheme", values="value"))


main()
