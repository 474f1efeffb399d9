"""SHAP of the full SO2 model: exact TreeSHAP (LightGBM pred_contrib) on a sample.

Inputs: the stored model and the station feature table. Outputs: the mean |SHAP| table
(feature, group, mean_abs_shap, share) and the beeswarm and bar figures.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from gridfuse.explain import mean_abs_shap, plot_bar, plot_beeswarm, tree_shap
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import SO2Model


def main() -> None:
    logger = from_snakemake(snakemake)
    out = snakemake.output
    model = SO2Model.load(Path(snakemake.input.txt).parent)
    table = pd.read_parquet(snakemake.input.table)
    table = table[np.isfinite(table["value"])]
    n = min(snakemake.params.samples, len(table))
    sample = table.sample(n=n, random_state=snakemake.params.seed)
    X = model.builder.transform(sample)
    contrib = tree_shap(model.booster, X, threads=snakemake.threads)
    imp = mean_abs_shap(contrib, model.columns)
    with atomic_path(out.table, suffix=".csv") as tmp:
        imp.to_csv(tmp, index=False)
    plot_beeswarm(contrib, X, model.columns, out.beeswarm)
    plot_bar(imp, out.bar)
    logger.info("SHAP share by group:\n%s", imp.groupby("group")["share"].sum())


main()
