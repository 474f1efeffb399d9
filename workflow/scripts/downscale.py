"""Downscale one source-year of daily fields to the product grid.

Input: ``daily/{source}/{year}.nc`` (native grid, or an absent marker).
Output: ``downscaled/{source}/{year}.nc`` on the product grid, every data variable, by the
configured method (per-variable overrides; ``wd`` recomputed from u10/v10), compressed and
chunked by time; an absent marker stays an absent marker.  The file is regridded lazily in
blocks of ``time_block`` days and streamed to disk, so memory stays bounded.
"""

import dask

from gridfuse.grid import Grid
from gridfuse.io import is_absent, read_netcdf, write_absent, write_netcdf
from gridfuse.log import from_snakemake
from gridfuse.regrid import regrid


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    src = snakemake.input.daily
    dst = snakemake.output.downscaled
    year = int(snakemake.wildcards.year)

    if is_absent(src):
        with read_netcdf(src) as marker:
            reason = marker.attrs.get("reason", f"{p.source} has no data for {year}")
        write_absent(dst, source=p.source, year=year, reason=reason)
    else:
        grid = Grid.from_config(p.grid)
        logger.info(
            "%s %d -> %s by %s (overrides %s)",
            p.source,
            year,
            grid.describe(),
            p.method,
            dict(p.variable_methods),
        )
        with dask.config.set(scheduler="threads", num_workers=snakemake.threads):
            daily = read_netcdf(src, chunks={"time": p.time_block})
            fine = regrid(daily, grid, p.method, methods=dict(p.variable_methods))
            write_netcdf(
                fine,
                dst,
                cfg={
                    "grid": dict(p.grid),
                    "method": p.method,
                    "variable_methods": dict(p.variable_methods),
                },
                sources=[p.source],
                attrs={"regrid_method": p.method, "regridded_from": src},
                utc_start_hour=p.utc_start_hour,
                what=f"regridded ({p.method}) from {src}",
            )
            daily.close()


main()
