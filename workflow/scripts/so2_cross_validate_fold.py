"""One cross-validation fold of the SO2 models: each model of the scheme refitted on the
fold's training stations and predicting its held-out rows.

Input: the station feature table. Output: the fold's out-of-fold predictions
(model, scheme, fold, subset, station, date, obs, pred), gathered into scores.csv by
cross_validate_so2. The split is recomputed from the seeded splitter, so every job sees the
folds one process would make.
"""

import pandas as pd

from gridfuse.features import FeatureConfig
from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.registry import make
from gridfuse.models.so2 import cross_validate_fold, so2_splitters


def main() -> None:
    from_snakemake(snakemake)
    p, wc = snakemake.params, snakemake.wildcards
    grid = Grid.from_config(p.grid)
    cfg = FeatureConfig.from_dict(p.features)
    table = pd.read_parquet(snakemake.input.table)
    settings = dict(seed=p.seed, threads=snakemake.threads, params=p.model, features=cfg, grid=grid)
    models = {n: (lambda n=n: make("so2", n, **settings)) for n in p.models}
    splitter = so2_splitters([wc.scheme], p.cv, p.seed)[wc.scheme]
    oof = cross_validate_fold(table, models, wc.scheme, splitter, wc.fold, history=table)
    with atomic_path(snakemake.output.oof, suffix=".parquet") as tmp:
        oof.to_parquet(tmp, index=False)


main()
