"""Models: MPFM and its deep variants, precipitation baselines, the SO2 models, training
bundles, and the one factory of every model (:mod:`~gridfuse.models.registry`)."""
