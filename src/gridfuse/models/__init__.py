"""Models: MPFM and its deep variants, precipitation baselines, training bundles."""
