"""scores.csv of a precipitation product: every model, baseline and raw source, every scheme.

Inputs: ``samples/patches.nc``, the trained networks ``model/{net}/{set}.pt``, the product
files ``product/{year}.nc`` (model ``product`` at held-out stations = the files' values at
their cells), the site_cv fold statistics ``evaluation/site_cv/fold_{k}.csv`` and, for an
OSSE, the per-year grid statistics ``evaluation/grid/{year}.csv`` and ``truth/{year}.nc``.
Output: ``evaluation/scores.csv`` (``model, scheme, subset, metric, value, n``).
"""

from pathlib import Path

import pandas as pd
import torch

from gridfuse.evaluate import SCORE_COLUMNS, day_set_keys, evaluate_stations, rows_from_stats_frame
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.train import FusionModel
from gridfuse.samples import PatchSampler


def main() -> None:
    logger = from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    ps = PatchSampler.open(snakemake.input.patches, window=p.window)
    day_keys = day_set_keys(ps.times, {int(k): v for k, v in p.year_sets.items()})
    deep = {}
    for path in map(Path, snakemake.input.models):
        deep.setdefault(path.parent.name, {})[path.stem] = FusionModel.load(path)
    deep.pop("mpfm_g", None)  # a component of the product, scored through it
    truth = ps.at_cells(snakemake.input.truth) if snakemake.input.truth else None
    stats = [
        evaluate_stations(
            ps.x,
            ps.y,
            ps.channels,
            ps.roles,
            day_keys,
            sources=p.sources,
            deep_models=deep,
            baselines=p.baselines,
            schemes=[s for s in p.schemes if s in ("holdout", "osse_stations")],
            truth=truth,
            thresholds=p.thresholds,
            seed=p.seed,
            threads=snakemake.threads,
            params={k: v for k, v in p.baseline_params.items() if k != "models"},
            device=p.device,
            geo=ps.geo(),
            product=ps.at_cells(snakemake.input.product),
            min_gauges=p.min_gauges,
        )
    ]
    stats += [pd.read_csv(f) for f in snakemake.input.folds]
    stats += [pd.read_csv(f).drop(columns="year") for f in snakemake.input.grid]
    stats = pd.concat(stats, ignore_index=True)
    scores = pd.DataFrame(rows_from_stats_frame(stats, p.thresholds), columns=SCORE_COLUMNS)
    with atomic_path(snakemake.output.scores, suffix=".csv") as tmp:
        scores.to_csv(tmp, index=False)
    head = scores[(scores.subset == "all") & scores.metric.isin(["rmse", "mae", "csi"])]
    logger.info(
        "headline scores:\n%s",
        head.pivot_table(index="model", columns=["scheme", "metric"], values="value").round(3),
    )


main()
