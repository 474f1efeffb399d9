"""scores.csv of a precipitation product: every model, baseline and raw source, every scheme.

Inputs: ``samples/patches.nc``, the trained networks ``model/{net}/{set}.pt``, and for the
OSSE demo the per-year grid statistics ``evaluation/grid/{year}.csv`` and ``truth/{year}.nc``.
Output: ``evaluation/scores.csv`` (``model, scheme, subset, metric, value, n``).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gridfuse.evaluate import SCORE_COLUMNS, day_set_keys, evaluate_stations, rows_from_stats_frame
from gridfuse.io import atomic_path, read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.models.train import FusionModel, TrainConfig, net_sizes
from gridfuse.samples import PatchSampler

logger = from_snakemake(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
ps = PatchSampler.open(snakemake.input.patches, window=p.window)
day_keys = day_set_keys(ps.times, {int(k): v for k, v in p.year_sets.items()})

deep = {}
for path in map(Path, snakemake.input.models):
    deep.setdefault(path.parent.name, {})[path.stem] = FusionModel.load(path)

truth = None
if snakemake.input.truth:
    with read_netcdf(snakemake.input.patches) as ds:
        rows, cols = ds["row"].values, ds["col"].values
    truth = np.full(ps.y.shape, np.nan, dtype="f4")
    for f in snakemake.input.truth:
        with read_netcdf(f, load=True) as ds:
            pos = ps.times.get_indexer(pd.DatetimeIndex(ds["time"].values))
            have = pos >= 0
            truth[:, pos[have]] = ds["precip"].values[have][:, rows, cols].T

cfg = dict(p.mpfm)
spec = {
    "sizes": net_sizes(cfg, p.window),
    "train": TrainConfig.from_dict({**cfg, "seeds": [p.seed + s for s in cfg["seeds"]]}),
    "val_fraction": cfg["val_fraction"],
}
stats = evaluate_stations(
    ps.x,
    ps.y,
    ps.channels,
    ps.roles,
    day_keys,
    sources=p.sources,
    deep_models=deep,
    baselines=p.baselines,
    schemes=[s for s in p.schemes if s != "osse_grid"],
    truth=truth,
    n_splits=p.n_splits,
    site_cv_deep={n: spec for n in p.site_cv_deep},
    thresholds=p.thresholds,
    seed=p.seed,
    threads=snakemake.threads,
    params={k: v for k, v in p.baseline_params.items() if k != "models"},
    device=cfg["device"],
)
if snakemake.input.grid:
    grid = pd.concat([pd.read_csv(f) for f in snakemake.input.grid]).drop(columns="year")
    stats = pd.concat([stats, grid], ignore_index=True)
scores = pd.DataFrame(rows_from_stats_frame(stats, p.thresholds), columns=SCORE_COLUMNS)
with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
    scores.to_csv(tmp, index=False)
head = scores[(scores.subset == "all") & scores.metric.isin(["rmse", "mae"])]
logger.info(
    "headline scores:\n%s",
    head.pivot_table(index="model", columns=["scheme", "metric"], values="value").round(3),
)
