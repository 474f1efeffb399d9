"""One Cloud-Optimized GeoTIFF per day of a year's precipitation product.

Input: ``product/{year}.nc``.  Output: the folder ``product/geotiff/{year}/`` with
``precip_YYYYMMDD.tif`` (or ``.tif.gz``), mm/day, EPSG:4326, float32, nodata -9999.
"""

from pathlib import Path

import pandas as pd

from gridfuse.grid import Grid
from gridfuse.io import read_netcdf, write_geotiff
from gridfuse.kinds import get_kind
from gridfuse.log import from_snakemake


def main() -> None:
    logger = from_snakemake(snakemake)
    kind = get_kind("precip")
    out = Path(snakemake.output.geotiff)
    out.mkdir(parents=True, exist_ok=True)
    with read_netcdf(snakemake.input.product) as ds:
        da = ds[kind.variable]
        grid = Grid.from_coords(ds["lat"].values, ds["lon"].values)
        for i, day in enumerate(pd.DatetimeIndex(ds["time"].values)):
            path = out / kind.geotiff_name(day)
            write_geotiff(
                da.isel(time=i),
                path,
                grid=grid,
                gz=snakemake.params.gzip,
                tags={"date": f"{day:%Y-%m-%d}", "units": kind.units},
            )
    logger.info("wrote %d daily GeoTIFFs to %s", da.sizes["time"], out)


main()
