"""Ablation of the SO2 model: the full model, then each technique removed in turn.

Input: the station feature table. Output: ablation.csv
(variant, removed, scheme, metric, value, n, delta vs the full model).
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import ModelSettings, ablation, so2_splitters

logger = from_snakemake(snakemake)
p = snakemake.params
grid = Grid.from_config(p.grid)
cfg = FeatureConfig.from_dict(p.features)
settings = ModelSettings.from_config(p.model, seed=p.seed, threads=snakemake.threads)
table = pd.read_parquet(snakemake.input.table)

splitters = so2_splitters(p.cv["ablation_schemes"], p.cv, p.seed)
table_out = ablation(table, cfg, grid, settings, splitters)
with atomic_path(snakemake.output.ablation, suffix=".csv") as tmp:
    table_out.to_csv(tmp, index=False)
logger.info(
    "ablation R2:\n%s",
    table_out[table_out.metric == "r2"].pivot(index="variant", columns="scheme", values="value"),
)
