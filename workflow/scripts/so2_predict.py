"""Predict one year of the gridded daily SO2 product in tiles.

Inputs: the stored model, the year's downscaled fields, static.nc. Outputs: the yearly
NetCDF (so2, ug/m3; streamed one time block at a time, so memory is one block of the
grid, not the year) and, when outputs.geotiff is on, one cloud-optimized GeoTIFF per day
(so2_YYYYMMDD.tif, gzipped when outputs.gzip); the folder is empty otherwise.
"""

from pathlib import Path

from gridfuse.features import open_dynamic
from gridfuse.io import read_netcdf
from gridfuse.log import from_snakemake
from gridfuse.models.so2 import SO2Model, predict_year_to_netcdf

logger = from_snakemake(snakemake)
p = snakemake.params
model = SO2Model.load(Path(snakemake.input.txt).parent)
model.settings.threads = snakemake.threads
files = [read_netcdf(f) for f in snakemake.input.dynamic]
dynamic = open_dynamic(files, model.features.dynamic, model.grid)
# quality layer: the model's dynamic variables of each source (downscaled/<source>/<year>.nc)
groups = {}
for f, ds in zip(snakemake.input.dynamic, files):
    groups.setdefault(Path(f).parent.name, [])
    groups[Path(f).parent.name] += [v for v in ds.data_vars if v in model.features.dynamic]
groups = {s: sorted(set(vs)) for s, vs in groups.items()}
dynamic = dynamic.sel(time=slice(p.start, p.end))
static = read_netcdf(snakemake.input.static)

outdir = Path(snakemake.output.geotiff)
outdir.mkdir(parents=True, exist_ok=True)
predict_year_to_netcdf(
    model,
    dynamic,
    static,
    snakemake.output.netcdf,
    tile=p.tile,
    time_block=p.days,
    geotiff_dir=outdir if p.geotiff else None,
    gzip=p.gzip,
    cfg=p.cfg,
    sources=p.sources,
    utc_start_hour=p.cfg["day_window"]["utc_start_hour"],
    flag_groups=groups,
)
