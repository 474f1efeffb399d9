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
    threads: cost_threads("ingest_tropomi")
    resources:
        mem_mb=cost_mem("ingest_tropomi"),
        runtime=cost_runtime("ingest_tropomi"),
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
    threads: cost_threads("ingest_era5_met")
    resources:
        mem_mb=cost_mem("ingest_era5_met"),
        runtime=cost_runtime("ingest_era5_met"),
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
