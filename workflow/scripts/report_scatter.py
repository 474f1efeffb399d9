"""Report figure: predicted against observed values at held-out stations.

precip: the product and each downscaled source at the evaluation stations (never used in
training); so2: the out-of-fold predictions of every model in the site_cv folds
(evaluation/so2_oof.parquet).  Output: report/scatter.png.

The precip fields are not held: only the storage chunks holding the evaluation stations'
cells are read, 32 days at a time (:func:`gridfuse.plots.station_pairs_from_files`), so the
job holds the station-days' pairs and one slab of chunks.  Priced as ``report_scatter`` in
gridfuse.cost.  Of the out-of-fold table only the chosen scheme's headline rows are read
(:func:`gridfuse.plots.oof_pairs`).
"""

import pandas as pd

from gridfuse.log import from_snakemake
from gridfuse.plots import oof_pairs, placeholder, plot_scatter, station_pairs_from_files


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    inp = snakemake.input
    out = snakemake.output.scatter

    if p.held_out == "out_of_fold":
        pairs, scheme = oof_pairs(inp.oof, p.scheme)
        title = f"{p.title}: out-of-fold predictions ({scheme})"
    else:
        stations = pd.read_csv(inp.stations, dtype={"station": str})
        obs = pd.read_parquet(inp.observations)
        files = {"product": list(inp.product)}
        for key in inp.keys():
            if key.startswith("src_"):
                files[key.removeprefix("src_")] = list(inp[key])
        pairs = station_pairs_from_files(files, p.variable, stations, obs, roles=("evaluation",))
        title = f"{p.title}: evaluation stations (held out of training)"

    logger.info("%d pairs of %d models", len(pairs), pairs["model"].nunique())
    if pairs.empty:
        placeholder(out, "no held-out stations: every gauge is used in the site_cv folds")
    else:
        plot_scatter(pairs, out, kind=p.kind, title=title)


main()
