"""Report figure: maps of the product on chosen days beside the truth (demo) and each source.

Inputs: product/{year}.nc, truth/{year}.nc (demo), downscaled/{source}/{year}.nc (precip) for
the years holding the report days, and the stations (drawn as circles with their values).
Output: report/maps.png.

The product years are never held whole: the configured ``report.days`` are looked up on the
files' time axes, else the days are chosen from the product's domain means, taken one day at
a time (:func:`gridfuse.plots.choose_days`); then only the chosen days of each field are
read.  A grid of more than :data:`gridfuse.plots.MAP_CELLS` cells per side is drawn as block
means (:func:`gridfuse.plots.block_mean`).  Priced as ``report_maps`` in gridfuse.cost.
"""

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import choose_days, plot_day_maps, read_days


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    inp = snakemake.input

    days = choose_days(inp.product, p.variable, n=p.n_days, days=p.days)
    logger.info("report days: %s", [f"{d:%Y-%m-%d}" for d in days])
    panels = {"product": read_days(inp.product, p.variable, days)}
    for key in inp.keys():
        if key == "truth" or key.startswith("src_"):
            da = read_days(inp[key], p.variable, days)
            if da is not None:
                panels[key.removeprefix("src_")] = da

    stations = pd.read_csv(inp.stations, dtype={"station": str})
    obs = pd.read_parquet(inp.observations)
    obs = obs[obs["date"].isin(days)].merge(stations, on="station")
    plot_day_maps(panels, days, snakemake.output.maps, kind=p.kind, stations=obs, title=p.title)


main()
