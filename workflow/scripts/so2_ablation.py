"""Ablation of the SO2 model: the full model, then each technique removed in turn.

Input: the station feature table (and, for a synthetic product, the daily fields, static
layers and OSSE truth: every variant is then also gridded and scored osse_grid). Output:
ablation.csv (variant, removed, scheme, metric, value, n, delta vs the full model).
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import ModelSettings, ablation, open_osse_inputs, so2_splitters

logger = from_snakemake(snakemake)
p = snakemake.params
grid = Grid.from_config(p.grid)
cfg = FeatureConfig.from_dict(p.features)
settings = ModelSettings.from_config(p.model, seed=p.seed, threads=snakemake.threads)
table = pd.read_parquet(snakemake.input.table)

splitters = so2_splitters(p.cv["ablation_schemes"], p.cv, p.seed)
osse = None
if "truth" in snakemake.input.keys():
    osse = open_osse_inputs(
        snakemake.input.dynamic, snakemake.input.static, snakemake.input.truth, cfg.dynamic, grid
    )
    osse["every"] = p.cv["so2_osse_every"]
table_out = ablation(table, cfg, grid, settings, splitters, osse=osse)
with atomic_path(snakemake.output.ablation, suffix=".csv") as tmp:
    table_out.to_csv(tmp, index=False)
logger.info(
    "ablation R2:\n%s",
    table_out[table_out.metric == "r2"].pivot(index="variant", columns="scheme", values="value"),
)
