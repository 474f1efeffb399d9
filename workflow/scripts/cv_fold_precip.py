"""Statistics of one site_cv fold of a precipitation product (every model refitted on the
fold's fit stations; the fold's test stations scored).

Input: ``samples/patches.nc``.  Output: ``evaluation/site_cv/fold_{fold}.csv`` (additive
statistics per model, summed over folds by ``cross_validate_precip``).
"""

import torch

from gridfuse.evaluate import day_set_keys, site_cv_fold
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.train import TrainConfig, net_sizes
from gridfuse.samples import PatchSampler


def main() -> None:
    from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    ps = PatchSampler.open(snakemake.input.patches, window=p.window)
    cfg = dict(p.mpfm)
    spec = {
        "sizes": net_sizes(cfg, p.window),
        "train": TrainConfig.from_dict(cfg, p.seed),
        "val_fraction": cfg["val_fraction"],
    }
    stats = site_cv_fold(
        int(p.fold),
        ps.x,
        ps.y,
        ps.channels,
        ps.roles,
        day_set_keys(ps.times, {int(k): v for k, v in p.year_sets.items()}),
        sources=p.sources,
        geo=ps.geo(),
        baselines=p.baselines,
        refit={n: spec for n in p.refit},
        product=p.product,
        n_splits=p.n_splits,
        thresholds=p.thresholds,
        seed=p.seed,
        threads=snakemake.threads,
        params={k: v for k, v in p.baseline_params.items() if k != "models"},
        device=cfg["device"],
        min_gauges=p.min_gauges,
    )
    with atomic_path(snakemake.output.stats, suffix=".csv") as tmp:
        stats.to_csv(tmp, index=False)


main()
