"""Rasterize a product's domain mask onto its grid.

Input: the mask file named by ``products.<name>.mask.path`` (vector or raster), if any.
Output: ``mask.nc`` (``mask``: 1 inside the domain, 0 outside; lat, lon).
"""

from gridfuse.grid import Grid
from gridfuse.log import from_snakemake
from gridfuse.mask import build_mask, write_mask


def main() -> None:
    from_snakemake(snakemake)
    p = snakemake.params
    grid = Grid.from_config(p.grid)
    mask = build_mask(p.mask, grid, key=p.key)
    write_mask(mask, grid, snakemake.output.mask, rule=p.mask.get("rule", "centre"))


main()
