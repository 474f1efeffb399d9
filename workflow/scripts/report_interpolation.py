"""Report figure: the interpolation comparison of the sources at the stations.

Input: evaluation/interpolation.csv (source, method, metric, value, n).
Output: report/interpolation.png.
"""

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import plot_interpolation


def main() -> None:
    from_snakemake(snakemake)
    table = pd.read_csv(snakemake.input.table)
    plot_interpolation(table, snakemake.output.figure, title=snakemake.params.title)


main()
