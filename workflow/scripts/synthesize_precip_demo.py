"""Synthesize the precipitation OSSE demo of one product.

Writes, under ``results/{product}/raw/``: every source in its real file layout
(``<source>/...``), the truth on the product grid (``truth/{year}.nc``, published to
``results/{product}/truth/`` by rule ``truth_precip``), the DEM (``static/dem.tif``), the
gauges as CMA daily files (``stations/``), and last the manifest (the rule's output).
"""

from pathlib import Path

from gridfuse.daily import DayWindow
from gridfuse.grid import Grid
from gridfuse.log import from_snakemake
from gridfuse.synth.precip import synthesize_precip, write_manifest


def main() -> None:
    from_snakemake(snakemake)
    p = snakemake.params
    manifest = synthesize_precip(
        Path(snakemake.output.manifest).parent.parent,
        Grid.from_config(p.grid),
        p.start,
        p.end,
        DayWindow(p.utc_start_hour),
        p.sources,
        seed=p.seed,
        margin=p.margin,
        n_stations=p.n_stations,
        gauge_noise=p.gauge_noise,
        truth=p.truth,
        threads=snakemake.threads,
    )
    write_manifest(manifest, snakemake.output.manifest)


main()
