"""Warp a product's static layers onto its target grid.

Inputs: the layer files named in ``params.layers`` (GeoTIFF/NetCDF; the demo's synthetic
GeoTIFFs under ``raw/static/``).  Output: ``results/<product>/static.nc`` with ``elevation``
and ``slope`` plus ``landcover``, ``ndvi``, ``population``, ``road_density`` where configured.
"""

from gridfuse.grid import Grid
from gridfuse.io import write_netcdf
from gridfuse.log import from_snakemake
from gridfuse.static import build_static


def main() -> None:
    logger = from_snakemake(snakemake)
    grid = Grid.from_config(snakemake.params.grid)
    layers = snakemake.params.layers
    logger.info(
        "static layers for %s: %s", grid.describe(), {k: v["path"] for k, v in layers.items()}
    )
    ds = build_static(layers, grid)
    write_netcdf(
        ds,
        snakemake.output.static,
        cfg={"grid": dict(snakemake.params.grid), "layers": dict(layers)},
        sources=list(layers),
    )


main()
