# Rules of the 'ingest_so2' stage: one rule ingest_<source> per SO2 source key (tropomi,
# era5_met, ...), read by workflow/scripts/ingest_source.py through the format registry.


def _so2_source_keys():
    keys = sorted({s for p in products_of("so2") for s in sources(p)})
    both = sorted(set(keys) & set(_precip_source_keys()))
    if both:
        raise WorkflowError(
            f"source keys {both} are used by a precip and an so2 product; give the so2 "
            f"sources other keys (each key has one ingest rule)"
        )
    return keys


for _src in _so2_source_keys():

    # Raw files of one SO2 source -> daily fields on its native grid (TROPOMI: mean column
    # and pixel count; ERA5: t2m, d2m, rh, blh, sp, winds, tp), one year, and its QC table.
    rule:
        name:
            f"ingest_{_src}"
        input:
            raw=lambda wc, s=_src: raw_input(wc.product, s, wc.year),
        output:
            daily=res("{product}", "daily", _src, "{year}.nc"),
            qc=res("{product}", "daily", _src, "{year}.qc.csv"),
        log:
            res("{product}", "logs", f"ingest_{_src}", "{year}.log"),
        benchmark:
            res("{product}", "benchmarks", f"ingest_{_src}", "{year}.tsv")
        wildcard_constraints:
            product="|".join(_products_with(_src, "so2")),
        conda:
            "../../envs/gridfuse.yaml"
        threads: cost_threads(f"ingest_{_src}")
        resources:
            mem_mb=cost_mem(f"ingest_{_src}"),
            runtime=cost_runtime(f"ingest_{_src}"),
        params:
            job=lambda wc, s=_src: ingest_job(wc.product, s, wc.year),
        script:
            "../scripts/ingest_source.py"

    register_target(
        "so2",
        os.path.join("{results}", "{product}", "daily", _src, "{year}.nc"),
        when=lambda p, s=_src: s in sources(p)
        and (not is_synthetic(p) or workflow.is_rule("synthesize_so2_demo")),
    )
