"""Choose the precipitation product's variant for one source-availability set.

Inputs: ``samples/patches.nc``, ``model/mpfm/{set}.pt`` and ``model/mpfm_g/{set}.pt``
(cross-fitted members on the training stations).  Output: ``model/product/{set}.json``
(:class:`gridfuse.gauge_fusion.ProductSpec`: network, residual correction and its fitted
interpolator, wet threshold, the inner site CV table).  Only training stations are used,
and only the set's days and those their windows reach are read from the patches
(:func:`gridfuse.gauge_fusion.build_set_product`).
"""

import torch

from gridfuse.gauge_fusion import build_set_product
from gridfuse.log import from_snakemake
from gridfuse.models.train import FusionModel


def main() -> None:
    from_snakemake(snakemake)
    torch.set_num_threads(snakemake.threads)
    p = snakemake.params
    models = {"mpfm": FusionModel.load(snakemake.input.mpfm)}
    models["mpfm_g"] = FusionModel.load(snakemake.input.mpfm_g)
    spec = build_set_product(
        snakemake.input.patches,
        models,
        p.sources,
        {int(k): v for k, v in p.year_sets.items()},
        min_gauges=p.min_gauges,
        csi_threshold=p.thresholds[0],
        device=p.device,
    )
    spec.save(snakemake.output.spec)


main()
