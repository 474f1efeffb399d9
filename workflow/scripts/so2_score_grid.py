"""osse_grid scores of one SO2 model (synthetic products): every cell-day of every k-th day
inside the domain mask against the OSSE truth.

Inputs: the truth; for the full model its gridded products, for a baseline the station
feature table, the daily fields and static.nc (the baseline is fitted on every observed
station-day and gridded; a LightGBM baseline with its trees compiled when model.predictor
is lleaves and its grid rows reach the break-even of the cost constants); the mask when the
product has one. Output: score rows (model, scheme=osse_grid, subset, metric, value, n).
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.models.registry import make
from gridfuse.models.so2 import open_osse_inputs, osse_baseline_scores, osse_grid_scores


def main() -> None:
    from_snakemake(snakemake)
    p, name, inp = snakemake.params, snakemake.wildcards.model, snakemake.input
    grid = Grid.from_config(p.grid)
    mask = read_mask(inp.mask, grid) if "mask" in inp.keys() else None
    if "products" in inp.keys():
        scores = osse_grid_scores(inp.products, inp.truth, name, every=p.every, mask=mask)
    else:
        cfg = FeatureConfig.from_dict(p.features)
        fields = open_osse_inputs(inp.dynamic, inp.static, inp.truth, cfg.dynamic, grid)
        table = pd.read_parquet(inp.table)
        settings = dict(seed=p.seed, threads=snakemake.threads, params=p.model, grid=grid)
        model = {name: lambda: make("so2", name, features=cfg, **settings)}
        scores = osse_baseline_scores(
            model, table, **fields, every=p.every, mask=mask, predictor=p.predictor
        )
    with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
        scores.to_csv(tmp, index=False)


main()
