"""Ingest the station observations of one product.

Inputs: the raw station files (params.path; for the demo the synthetic files under
results/<product>/raw/stations/), in the layout named by params.fmt.
Outputs: stations/daily.parquet (station, date, value, n_valid), stations/stations.csv
(station, lat, lon, elevation, role, ...) and stations/qc.csv (check, station, n, detail).
"""

from gridfuse.grid import Grid
from gridfuse.io import atomic_path
from gridfuse.log import from_snakemake
from gridfuse.stations import ingest


def main() -> None:
    logger = from_snakemake(snakemake)
    p = snakemake.params
    out = snakemake.output

    daily, stations, qc = ingest(
        p.kind,
        p.fmt,
        p.path,
        p.table or None,
        Grid.from_config(p.grid),
        p.start,
        p.end,
        p.utc_start_hour,
        qc=p.qc,
        evaluation=p.evaluation,
        seed=p.seed,
        options=p.options,
    )
    if daily.empty:
        raise ValueError(f"no valid station-day in {p.path} for {p.start}..{p.end} after QC")

    with atomic_path(out.daily, suffix=".parquet") as tmp:
        daily.to_parquet(tmp, index=False)
    with atomic_path(out.stations, suffix=".csv") as tmp:
        stations.to_csv(tmp, index=False)
    with atomic_path(out.qc, suffix=".csv") as tmp:
        qc.to_csv(tmp, index=False)
    logger.info(
        "wrote %d station-days, %d stations, %d QC rows", len(daily), len(stations), len(qc)
    )


main()
