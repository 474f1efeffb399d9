"""One ablation variant of the SO2 model: the full model with one technique toggled,
cross-validated in every fold of the ablation schemes (and, for a synthetic product,
gridded and scored osse_grid inside the domain mask).

Inputs: the station feature table (and the OSSE fields, static layers, truth, mask).
Output: the variant's scores (variant, scheme, metric, value, n).
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.models.so2 import (
    ModelSettings,
    ablation_variant_scores,
    ablation_variants,
    open_osse_inputs,
    so2_splitters,
)


def main() -> None:
    from_snakemake(snakemake)
    p, inp, variant = snakemake.params, snakemake.input, snakemake.wildcards.variant
    grid = Grid.from_config(p.grid)
    variants = ablation_variants(FeatureConfig.from_dict(p.features))
    if variant not in variants:
        raise ValueError(f"unknown ablation variant {variant!r}; expected one of {list(variants)}")
    cfg = variants[variant][1]
    settings = ModelSettings.from_config(p.model, seed=p.seed, threads=snakemake.threads)
    table = pd.read_parquet(inp.table)
    splitters = so2_splitters(p.cv["ablation_schemes"], p.cv, p.seed)
    osse = None
    if "truth" in inp.keys():
        osse = open_osse_inputs(inp.dynamic, inp.static, inp.truth, cfg.dynamic, grid)
        osse["every"] = p.cv["so2_osse_every"]
        osse["mask"] = read_mask(inp.mask, grid) if "mask" in inp.keys() else None
        osse["predictor"] = p.predictor  # compiled trees when the grid rows pay for them
    scores = ablation_variant_scores(table, variant, cfg, grid, settings, splitters, osse=osse)
    with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
        scores.to_csv(tmp, index=False)


main()
