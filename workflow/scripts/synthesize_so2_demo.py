"""Synthesize the SO2 OSSE of a demo product and write its raw inputs in real formats.

Outputs under ``results/<product>/``: ``raw/tropomi/`` (L2 orbits), ``raw/era5_met/`` (new-CDS
ZIPs), ``raw/static/`` (GeoTIFFs), ``raw/stations/`` (china_sites + station list),
``raw/truth/{year}.nc`` (published by rule truth_so2) and ``raw/manifest.json`` (the
rule's output, written last).
"""

from pathlib import Path

from gridfuse.grid import Grid
from gridfuse.log import from_snakemake
from gridfuse.synth.so2 import SO2Knobs, synthesize_so2


def main() -> None:
    from_snakemake(snakemake)
    p = snakemake.params
    product_dir = Path(snakemake.output.manifest).parent.parent
    synthesize_so2(
        Grid.from_config(p.grid),
        p.start,
        p.end,
        p.utc_start_hour,
        product_dir,
        SO2Knobs.from_config(p.knobs),
        seed=p.seed,
        product=snakemake.wildcards.product,
    )


main()
