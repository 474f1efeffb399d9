"""Report: metric tables (HTML, one per scheme and subset) and bar charts from scores.csv.

Input: evaluation/scores.csv.  Outputs: report/scores.png and report/scores.html.
"""

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import plot_scores, scores_html


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params

    scores = pd.read_csv(snakemake.input.scores)
    logger.info("%d score rows, schemes %s", len(scores), sorted(scores["scheme"].unique()))
    plot_scores(scores, snakemake.output.figure, first=p.first, title=p.title)
    scores_html(scores, snakemake.output.table, first=p.first, title=p.title)


main()
