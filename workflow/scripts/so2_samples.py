"""Station-day feature table of an SO2 product.

Inputs: downscaled daily fields of every source and year, static.nc, the QC'd station
table and daily observations. Output: a parquet table, one row per station pixel and day
(observed or not; ``value`` NaN where unobserved), with the dynamic fields, their
neighbourhood means and the static layers (gridfuse.features.table.station_frame).
"""

import pandas as pd

from gridfuse.features import (
    FeatureConfig,
    attach_values,
    open_dynamic,
    station_frame,
    station_pixels,
)
from gridfuse.grid import Grid
from gridfuse.io import atomic_path, read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import with_coords


def main() -> None:
    logger = from_snakemake(snakemake)
    inp = snakemake.input
    grid = Grid.from_config(snakemake.params.grid)
    cfg = FeatureConfig.from_dict(snakemake.params.features)
    dynamic = open_dynamic([read_netcdf(p) for p in inp.dynamic], cfg.dynamic, grid)
    static = read_netcdf(inp.static)
    stations = pd.read_csv(inp.stations, dtype={"station": str})
    daily = pd.read_parquet(inp.daily)
    pixels = station_pixels(stations, grid)
    frame = station_frame(dynamic, static, pixels, cfg, time_block=16)
    frame = with_coords(attach_values(frame, daily, pixels), grid)
    with atomic_path(snakemake.output.table, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    logger.info("wrote %s: %d rows x %d columns", snakemake.output.table, *frame.shape)


main()
