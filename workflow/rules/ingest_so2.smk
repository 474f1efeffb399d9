# Rules of the 'ingest_so2' stage.


# TROPOMI L2 SO2 orbits of one year -> daily mean column and pixel count (native 0.05 deg grid).
rule ingest_tropomi:
    input:
        raw=lambda wc: raw_input(wc.product, "tropomi", wc.year),
    output:
        daily=res("{product}", "daily", "tropomi", "{year}.nc"),
    log:
        res("{product}", "logs", "ingest_tropomi", "{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "ingest_tropomi", "{year}.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    resources:
        # 6 bytes per cell-day of the (coarser) TROPOMI grid, plus one orbit in memory
        mem_mb=lambda wc, attempt: 1500 * attempt
        + mem_for_cells(
            wc.product,
            per_cell_day_bytes=6,
            days=days_in_year(wc.product, wc.year),
            base_mb=0,
            factor=1.5
            * (
                pcfg(wc.product)["grid"]["res"]
                / source_cfg(wc.product, "tropomi")["grid_res"]
            )
            ** 2,
            attempt=attempt,
        ),
        runtime=lambda wc, attempt: runtime_for(
            10 + days_in_year(wc.product, wc.year) // 4, attempt
        ),
    params:
        job=lambda wc: so2_source_params(wc.product, "tropomi", wc.year),
    script:
        "../scripts/ingest_tropomi.py"


# ERA5 hourly meteorology of one year -> daily t2m, d2m, rh, blh, sp, winds, tp (0.25 deg grid).
rule ingest_era5_met:
    input:
        raw=lambda wc: raw_input(wc.product, "era5_met", wc.year),
    output:
        daily=res("{product}", "daily", "era5_met", "{year}.nc"),
    log:
        res("{product}", "logs", "ingest_era5_met", "{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "ingest_era5_met", "{year}.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: retry(
            2000 + mem_for_cells(wc.product, days=31, base_mb=0, factor=0.2), attempt
        ),
        runtime=lambda wc, attempt: runtime_for(
            10 + days_in_year(wc.product, wc.year) // 6, attempt
        ),
    params:
        job=lambda wc: so2_source_params(wc.product, "era5_met", wc.year),
    script:
        "../scripts/ingest_era5_met.py"


for _src in ("tropomi", "era5_met"):
    register_target(
        "so2",
        os.path.join("{results}", "{product}", "daily", _src, "{year}.nc"),
        when=lambda p, s=_src: s in sources(p)
        and (not is_synthetic(p) or workflow.is_rule("synthesize_so2_demo")),
    )
