"""Ablation table of the SO2 model, gathered from the variant jobs.

Inputs: each variant's scores (ablation_variant_so2). Output: ablation.csv (variant, removed,
scheme, metric, value, n, delta vs the full model).
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import ablation_table


def main() -> None:
    logger = from_snakemake(snakemake)
    scores = pd.concat([pd.read_csv(f) for f in snakemake.input.variants], ignore_index=True)
    table = ablation_table(scores, FeatureConfig.from_dict(snakemake.params.features))
    with atomic_path(snakemake.output.ablation, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    r2 = table[table.metric == "r2"]
    logger.info("ablation R2:\n%s", r2.pivot(index="variant", columns="scheme", values="value"))


main()
