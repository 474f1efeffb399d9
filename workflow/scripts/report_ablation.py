"""Report figure: the ablation of the SO2 model (each technique removed in turn).

Input: evaluation/ablation.csv (variant, removed, scheme, metric, value, n, delta).
Output: report/ablation.png.
"""

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import plot_ablation


def main() -> None:
    from_snakemake(snakemake)
    table = pd.read_csv(snakemake.input.table)
    plot_ablation(table, snakemake.output.figure, title=snakemake.params.title)


main()
