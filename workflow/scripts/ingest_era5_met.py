"""Reduce one year of ERA5 hourly meteorology to daily SO2 predictors.

Input: ERA5 NetCDF files (legacy or new CDS) or new-CDS ZIPs under the source folder(s),
including the previous year's last hours when the product day starts the day before.
Output: ``daily/era5_met/{year}.nc`` with ``t2m, d2m, rh, blh, sp, u10, v10, ws, wd, tp`` on
the ERA5 grid cropped to the product grid plus margin, or the absent marker.
"""

from gridfuse.daily import product_days
from gridfuse.grid import Grid
from gridfuse.io import write_absent, write_netcdf
from gridfuse.log import from_snakemake
from gridfuse.sources import era5_met
from gridfuse.sources.era5 import find_era5_files

logger = from_snakemake(snakemake)
job = snakemake.params.job
year = int(snakemake.wildcards.year)
out = snakemake.output.daily
days = product_days(job["start"], job["end"])
days = days[days.year == year]
files = era5_met.files_for_year(find_era5_files(job["folders"]), year)
if not job["covered"] or not files:
    write_absent(out, source="era5_met", year=year, reason="no ERA5 file for this year")
else:
    bbox = Grid.from_config(job["grid"]).padded(job["source"]["margin"]).bounds
    ds = era5_met.read_met_daily(files, days, job["utc_start_hour"], bbox=bbox)
    write_netcdf(
        ds,
        out,
        cfg=job,
        sources=["era5_met"],
        attrs={"days_missing": ds.attrs["days_missing"]},
        utc_start_hour=job["utc_start_hour"],
        what=f"era5_met {year}: hourly fields to product days",
    )
