"""Ingest one precipitation source for one year: raw files -> daily totals (mm/day).

Inputs: the source's raw folder (or the demo's synthetic manifest).  Output:
``results/{product}/daily/{source}/{year}.nc`` (variable ``precip`` on the source's native
grid cropped to the product grid + margin, ``days_missing`` attribute), or the explicit
"absent" marker for a year the source does not cover.
"""

import pandas as pd

from gridfuse.grid import Grid
from gridfuse.io import write_absent, write_netcdf
from gridfuse.log import from_snakemake
from gridfuse.sources import read_precip_daily

logger = from_snakemake(snakemake)
p = snakemake.params
source, year = p.source, int(snakemake.wildcards.year)
out = snakemake.output.daily

if not p.covers:
    write_absent(out, source=source, year=year, reason=p.absent_reason)
else:
    start, end = pd.Timestamp(p.start), pd.Timestamp(p.end)
    days = pd.date_range(max(start, pd.Timestamp(year, 1, 1)), min(end, pd.Timestamp(year, 12, 31)))
    da = read_precip_daily(
        p.format,
        p.folders,
        days,
        p.utc_start_hour,
        Grid.from_config(p.grid),
        p.margin,
        variable=p.variable,
        threads=snakemake.threads,
        options=p.options,
    )
    missing = int(da.attrs.get("days_missing", 0))
    logger.info("%s %d: %d days, %d missing, grid %s", source, year, len(days), missing, da.shape)
    write_netcdf(
        da.to_dataset(),
        out,
        cfg=p.source_cfg,
        sources=[source],
        attrs={"days_missing": missing, "source_format": p.format, "year": year},
        utc_start_hour=p.utc_start_hour,
        what=f"{source} {year}: {p.format} files to product days",
    )
