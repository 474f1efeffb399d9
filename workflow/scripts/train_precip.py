"""Train one fusion network (mpfm, mpfm_g, cnn3d or biconvlstm) for one source-availability set.

Inputs: ``samples/patches.nc``.  Outputs: ``model/{net}/{set}.pt`` with its JSON sidecar
(config, seeds, channels, normalization, members, code version, training-curve path) and
``evaluation/training_curve_{net}_{set}.csv``.  Only ``train`` stations are used, as
cross-fitted members (each holds out its own fold of them for early stopping, the inner
site CV of the product); ``mpfm_g`` adds the gauge channels of the fit gauges.
"""

import numpy as np
import torch

from gridfuse.gauge_fusion import train_precip_network
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.train import TrainConfig, net_sizes
from gridfuse.samples import PatchSampler


def main() -> None:
    from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    cfg = dict(p.mpfm)
    seed = int(p.seed)

    ps = PatchSampler.open(snakemake.input.patches, window=p.window)
    x, channels = ps.source_inputs(p.sources)
    train_idx = np.flatnonzero(ps.roles == "train")
    model, curve = train_precip_network(
        p.net,
        x,
        ps.y,
        channels,
        list(p.sources),
        train_idx,
        ps.geo(),
        sizes=net_sizes(cfg, p.window),
        train_cfg=TrainConfig.from_dict(cfg, seed),
        val_fraction=cfg["val_fraction"],
        min_gauges=p.min_gauges,
        split_seed=seed,
    )
    model.meta.update(training_curve=str(snakemake.output.curve), config=cfg)
    model.save(snakemake.output.model, snakemake.output.sidecar)
    with atomic_path(snakemake.output.curve, suffix=".csv") as tmp:
        curve.to_csv(tmp, index=False)


main()
