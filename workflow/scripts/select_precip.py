"""Choose the precipitation product's variant for one source-availability set.

Inputs: ``samples/patches.nc``, ``model/mpfm/{set}.pt`` and ``model/mpfm_g/{set}.pt``
(cross-fitted members on the training stations).  Output: ``model/product/{set}.json``
(:class:`gridfuse.gauge_fusion.ProductSpec`: network, residual correction and its fitted
interpolator, wet threshold, the inner site CV table).  Only training stations are used.
"""

import numpy as np
import torch

from gridfuse.evaluate import day_set_keys
from gridfuse.gauge_fusion import build_product
from gridfuse.log import from_snakemake
from gridfuse.models.train import FusionModel
from gridfuse.samples import PatchSampler


def main() -> None:
    from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    ps = PatchSampler.open(snakemake.input.patches, window=p.window)
    keys = day_set_keys(ps.times, {int(k): v for k, v in p.year_sets.items()})
    x, channels = ps.source_inputs(p.sources)
    models = {"mpfm": FusionModel.load(snakemake.input.mpfm)}
    models["mpfm_g"] = FusionModel.load(snakemake.input.mpfm_g)
    spec = build_product(
        models,
        x,
        ps.y,
        channels,
        ps.geo(),
        np.flatnonzero(ps.roles == "train"),
        np.flatnonzero(keys == "-".join(p.sources)),
        min_gauges=p.min_gauges,
        csi_threshold=p.thresholds[0],
        device=p.device,
    )
    spec.save(snakemake.output.spec)


main()
