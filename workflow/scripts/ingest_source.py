"""Ingest one gridded source for one year: raw files -> daily fields + the QC table.

Input: the source's raw folder(s) for the year (or the demo's synthetic manifest).
Outputs: ``results/{product}/daily/{source}/{year}.nc`` (the format's daily variables on its
native grid cropped to the product grid + margin; the "absent" marker for a year outside
the source's coverage) and ``{year}.qc.csv`` (every masked value, missing file and lost day;
``docs/contracts.md``).  The job fails, naming the files, when the losses exceed the
``input_qc`` limits.
"""

from gridfuse.daily import product_days
from gridfuse.grid import Grid
from gridfuse.io import atomic_path, write_absent, write_netcdf
from gridfuse.log import from_snakemake
from gridfuse.sources import absent_table, ingest


def main(smk) -> None:
    logger = from_snakemake(smk)
    job = smk.params.job
    source, year = job["source"], int(smk.wildcards.year)
    days = product_days(job["start"], job["end"])
    days = days[days.year == year]
    first, last = job["coverage"]
    covered = days[(days >= (first or days.min())) & (days <= (last or days.max()))]
    if not job["covers"] or covered.empty:
        reason = f"{source} ({job['format']}) covers {first or '...'}..{last or '...'}, not {year}"
        write_absent(smk.output.daily, source=source, year=year, reason=reason)
        table = absent_table(source, year, days, reason)
    else:
        ds, table = ingest(
            job["format"],
            job["folders"],
            days,
            job["utc_start_hour"],
            Grid.from_config(job["grid"]),
            source=source,
            year=year,
            margin=job["margin"],
            options=job["options"],
            covered=covered,
            limits=job["limits"],
            threads=smk.threads,
        )
        attrs = {
            "source_format": job["format"],
            "year": year,
            "days_missing": ds.attrs["days_missing"],
            "days_lost": ds.attrs["days_lost"],
        }
        attrs.update(
            {k: v for k, v in ds.attrs.items() if k.startswith("pixels_") or k == "l2_files"}
        )
        ds.attrs = {}
        write_netcdf(
            ds,
            smk.output.daily,
            cfg=job,
            sources=[source],
            attrs=attrs,
            utc_start_hour=job["utc_start_hour"],
            what=f"{source} {year}: {job['format']} files to product days",
        )
        logger.info(
            "%s %d: %d days, %d lost, grid %s",
            source,
            year,
            len(days),
            attrs["days_lost"],
            dict(ds.sizes),
        )
    with atomic_path(smk.output.qc, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 - injected by Snakemake
