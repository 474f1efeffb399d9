"""Bin one year of TROPOMI L2 SO2 orbits onto the daily native grid.

Input: L2 files ``S5P_*_L2__SO2____*.nc`` under the source folder(s) (the demo's synthetic
orbits under ``raw/tropomi/``).  Output: ``daily/tropomi/{year}.nc`` with ``so2_column``
(mol m-2, area-weighted daily mean of valid pixels) and ``n_pixels``, or the absent marker for
a year without any orbit.
"""

import pandas as pd

from gridfuse.daily import product_days
from gridfuse.grid import Grid
from gridfuse.io import write_absent, write_netcdf
from gridfuse.log import from_snakemake
from gridfuse.sources import tropomi

logger = from_snakemake(snakemake)
job = snakemake.params.job
src = job["source"]
year = int(snakemake.wildcards.year)
out = snakemake.output.daily
days = product_days(job["start"], job["end"])
days = days[days.year == year]
files = []
if job["covered"]:
    first, last = days[0] - pd.Timedelta("1D"), days[-1] + pd.Timedelta("1D")
    for folder in job["folders"]:
        files += [f for f in tropomi.list_l2_files(folder, first, last) if f not in files]
if not files:
    write_absent(out, source="tropomi", year=year, reason="no TROPOMI L2 orbit in this year")
else:
    grid = tropomi.native_grid(Grid.from_config(job["grid"]), src["grid_res"], src["margin"])
    ds = tropomi.grid_daily(
        files,
        grid,
        days,
        utc_start_hour=job["utc_start_hour"],
        method=src["binning"],
        n_sub=src["supersample"],
        qa_min=src["qa_min"],
        cloud_max=src["cloud_max"],
        column_min=src["column_min"],
    )
    write_netcdf(
        ds,
        out,
        cfg=job,
        sources=["tropomi"],
        attrs=ds.attrs,
        utc_start_hour=job["utc_start_hour"],
        what=f"tropomi {year}: L2 orbits binned to product days",
    )
