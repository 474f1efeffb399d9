"""Report figure: maps of the product on chosen days beside the truth (demo) and each source.

Inputs: product/{year}.nc, truth/{year}.nc (demo), downscaled/{source}/{year}.nc (precip) for
the years holding the report days, and the stations (drawn as circles with their values).
Output: report/maps.png.
"""

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import pick_days, plot_day_maps, read_days


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    inp = snakemake.input

    panels = {"product": read_days(inp.product, p.variable)}
    if panels["product"] is None:
        raise ValueError(f"no product data in {list(inp.product)}")
    days = pick_days(panels["product"], n=p.n_days, days=p.days)
    logger.info("report days: %s", [f"{d:%Y-%m-%d}" for d in days])
    panels["product"] = panels["product"].sel(time=days)
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
