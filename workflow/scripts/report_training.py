"""Report figure: training curves of the networks (one panel per net x source set).

Inputs: evaluation/training_curve_{net}_{set}.csv (seed, epoch, train_loss, val_rmse, ...).
Output: report/training.png.
"""

from pathlib import Path

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import plot_training_curves


def main() -> None:
    from_snakemake(snakemake)
    curves = {
        Path(f).stem.removeprefix("training_curve_"): pd.read_csv(f) for f in snakemake.input.curves
    }
    plot_training_curves(curves, snakemake.output.figure, title=snakemake.params.title)


main()
