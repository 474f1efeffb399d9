"""Station samples of a precipitation product (format: ``gridfuse.samples``).

Inputs: ``downscaled/{source}/{year}.nc`` of every source and year, ``static.nc``,
``stations/stations.csv``, ``stations/daily.parquet``.
Outputs: ``samples/patches.nc`` (station-centred patch cubes over the whole period, gauge
targets, roles) and ``samples/points.parquet`` (values at the station cells, long table).
"""

import pandas as pd

from gridfuse.grid import Grid
from gridfuse.io import read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.samples import sources_by_year, write_samples


def main() -> None:
    from_snakemake(snakemake)
    p = snakemake.params
    sources = sources_by_year(snakemake.input.downscaled, list(p.sources), list(p.years))
    with read_netcdf(snakemake.input.static) as static:
        write_samples(
            snakemake.output.patches,
            snakemake.output.points,
            grid=Grid.from_config(p.grid),
            sources=sources,
            static=static.load(),
            stations=pd.read_csv(snakemake.input.stations, dtype={"station": str}),
            daily=pd.read_parquet(snakemake.input.observations),
            start=p.start,
            end=p.end,
            patch=p.patch,
            window_days=p.window_days,
            variable=p.variable,
            time_block=p.time_block,
            cfg={k: p[k] for k in ("grid", "start", "end", "patch", "window_days")},
        )


main()
