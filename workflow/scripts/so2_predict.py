"""Predict one year of the gridded daily SO2 product in tiles.

Inputs: the stored model (with its compiled trees when model.predictor is lleaves), the
year's downscaled fields, static.nc and, when the product has one, its domain mask.
Outputs: the yearly NetCDF (so2, ug/m3; streamed one time block at a time, so memory is one
block of the grid, not the year; NaN outside the mask) and, when outputs.geotiff is on, one
cloud-optimized GeoTIFF per day (so2_YYYYMMDD.tif, gzipped when outputs.gzip; nodata outside
the mask); the folder is empty otherwise. Tiles run side by side on the job's threads.
"""

from pathlib import Path

from gridfuse.features import open_dynamic
from gridfuse.io import read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.mask import read_mask
from gridfuse.models.so2 import SO2Model, predict_year_to_netcdf


def main() -> None:
    from_snakemake(snakemake)
    p, inp = snakemake.params, snakemake.input
    model = SO2Model.load(Path(inp.txt).parent)
    if p.predictor == "lleaves":
        model.use_compiled(Path(inp.txt).parent)
    files = [read_netcdf(f) for f in inp.dynamic]
    dynamic = open_dynamic(files, model.features.dynamic, model.grid)
    # quality layer: the model's dynamic variables of each source (downscaled/<source>/<year>.nc)
    groups = {}
    for f, ds in zip(inp.dynamic, files):
        vs = groups.setdefault(Path(f).parent.name, set())
        vs.update(v for v in ds.data_vars if v in model.features.dynamic)
    groups = {s: sorted(vs) for s, vs in groups.items()}
    dynamic = dynamic.sel(time=slice(p.start, p.end))
    static = read_netcdf(inp.static)
    mask = read_mask(inp.mask, model.grid) if "mask" in inp.keys() else None
    outdir = Path(snakemake.output.geotiff)
    outdir.mkdir(parents=True, exist_ok=True)
    predict_year_to_netcdf(
        model,
        dynamic,
        static,
        snakemake.output.netcdf,
        tile=p.tile,
        time_block=p.days,
        mask=mask,
        threads=snakemake.threads,
        geotiff_dir=outdir if p.geotiff else None,
        gzip=p.gzip,
        cfg=p.provenance,
        sources=p.sources,
        utc_start_hour=p.provenance["day_window"]["utc_start_hour"],
        flag_groups=groups,
    )


main()
