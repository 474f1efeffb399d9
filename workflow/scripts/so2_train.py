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
from gridfuse.models.so2 import ModelSettings, make_model

logger = from_snakemake(snakemake)
grid = Grid.from_config(snakemake.params.grid)
cfg = FeatureConfig.from_dict(snakemake.params.features)
settings = ModelSettings.from_config(
    snakemake.params.model, seed=snakemake.params.seed, threads=snakemake.threads
)

table = pd.read_parquet(snakemake.input.table)
model = make_model("lightgbm", cfg, grid, settings).fit(table)
model.save(
    Path(snakemake.output.txt).parent,
    extra={"n_rows": int(table["value"].notna().sum()), "seed": snakemake.params.seed},
)
logger.info("best iteration %d", model.booster.best_iteration)
