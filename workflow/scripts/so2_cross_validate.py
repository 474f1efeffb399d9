"""Cross-validate the full SO2 model and its baselines in the same folds.

Input: the station feature table (and, for a synthetic product, the gridded products, the
OSSE truth and, to grid the baselines too, the daily fields and static layers). Outputs:
scores.csv (model, scheme, subset, metric, value, n) and the out-of-fold predictions. All
stations are CV material (no SO2 holdout in the record).
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import (
    ModelSettings,
    cross_validate,
    make_model,
    open_osse_inputs,
    osse_baseline_scores,
    osse_grid_scores,
    scores_from_oof,
    so2_splitters,
)

logger = from_snakemake(snakemake)
p = snakemake.params
grid = Grid.from_config(p.grid)
cfg = FeatureConfig.from_dict(p.features)
settings = ModelSettings.from_config(p.model, seed=p.seed, threads=snakemake.threads)
table = pd.read_parquet(snakemake.input.table)

names = ["lightgbm", *p.model["so2_baselines"]]
models = {n: (lambda n=n: make_model(n, cfg, grid, settings)) for n in names}
splitters = so2_splitters(p.cv["so2_schemes"], p.cv, p.seed)
oof = cross_validate(table, models, splitters, history=table)
scores = scores_from_oof(oof)
if "products" in snakemake.input.keys():
    every = p.cv["so2_osse_every"]
    osse = [osse_grid_scores(snakemake.input.products, snakemake.input.truth, every=every)]
    if "dynamic" in snakemake.input.keys():
        inputs = open_osse_inputs(
            snakemake.input.dynamic,
            snakemake.input.static,
            snakemake.input.truth,
            cfg.dynamic,
            grid,
        )
        base = {n: models[n] for n in names if n != "lightgbm"}
        osse.append(osse_baseline_scores(base, table, **inputs, every=every))
    scores = pd.concat([scores, *osse], ignore_index=True)

with atomic_path(snakemake.output.oof, suffix=".parquet") as tmp:
    oof.to_parquet(tmp, index=False)
with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
    scores.to_csv(tmp, index=False)
r2 = scores[(scores.metric == "r2") & (scores.subset == "all")]
logger.info("R2:\n%s", r2.pivot(index="model", columns="scheme", values="value"))
