"""Train one fusion network (mpfm, cnn3d or biconvlstm) for one source-availability set.

Inputs: ``samples/patches.nc``.  Outputs: ``model/{net}/{set}.pt`` with its JSON sidecar
(config, seeds, channels, normalization, code version, training-curve path) and
``evaluation/training_curve_{net}_{set}.csv``.  Only ``train`` stations are used: most fit
the weights and the standardization, ``val_fraction`` of them drive early stopping.
"""

import numpy as np
import torch

from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.models.train import TrainConfig, net_sizes, split_validation, train_fusion
from gridfuse.samples import STATIC_CHANNELS, PatchSampler

logger = from_snakemake(snakemake)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
cfg = dict(p.mpfm)
seed = int(p.seed)

ps = PatchSampler.open(snakemake.input.patches, window=p.window)
statics = [c for c in ps.channels if c in STATIC_CHANNELS]
channels = list(p.sources) + statics
x = ps.x[..., [ps.channels.index(c) for c in channels]]
train_idx = np.flatnonzero(ps.roles == "train")
val = split_validation(train_idx.size, cfg["val_fraction"], seed)
sizes = net_sizes(cfg, p.window)
train = TrainConfig.from_dict({**cfg, "seeds": [seed + s for s in cfg["seeds"]]})

model, curve = train_fusion(
    x,
    ps.y,
    channels,
    train_idx[~val],
    train_idx[val],
    net=p.net,
    sizes=sizes,
    train=train,
    log_channels=list(p.sources) if cfg["log_inputs"] else [],
    required_channels=list(p.sources),
)
model.meta.update(
    sources=list(p.sources),
    validation_stations=[str(s) for s in ps.stations[train_idx[val]]],
    training_curve=str(snakemake.output.curve),
    config=cfg,
)
model.save(snakemake.output.model, snakemake.output.sidecar)
with atomic_path(snakemake.output.curve, suffix=".csv") as tmp:
    curve.to_csv(tmp, index=False)
