"""Report: the input QC of a product as one table per source-year, plus the station totals.

Inputs: ``daily/<source>/<year>.qc.csv`` of every source-year and ``stations/qc.csv``.
Outputs: ``report/input_qc.html`` (shown in the report) and ``report/input_qc.csv`` (the
summary: one row per source-year).
"""

import pandas as pd

from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.sources.qc import read_qc_tables, summarize, summary_html


def main(smk) -> None:
    logger = from_snakemake(smk)
    summary = summarize(read_qc_tables(smk.input.qc))
    stations = pd.read_csv(smk.input.stations, dtype={"station": str}, keep_default_na=False)
    logger.info(
        "%d source-years, %d with losses", len(summary), int((summary.status == "losses").sum())
    )
    summary_html(summary, smk.output.table, title=smk.params.title, stations=stations)
    with atomic_path(smk.output.summary, suffix=".csv") as tmp:
        summary.to_csv(tmp, index=False)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
