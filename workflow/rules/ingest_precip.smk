# Rules of the 'ingest_precip' stage: one rule ingest_<source> per precipitation source key.
# Every format is read by workflow/scripts/ingest_source.py through the source-format
# registry (gridfuse.sources.registry), so a new format needs no rule of its own.


def _precip_source_keys():
    return sorted({s for p in products_of("precip") for s in sources(p)})


def _products_with(source, kind):
    return [p for p in products_of(kind) if source in sources(p)]


for _src in _precip_source_keys():

    # Raw files of one precipitation source -> daily totals (mm/day) on its native grid,
    # one year, and the source-year's QC table (every masked value and lost day counted).
    rule:
        name:
            f"ingest_{_src}"
        input:
            raw=lambda wc, s=_src: raw_input(wc.product, s, wc.year),
        output:
            daily=res("{product}", "daily", _src, "{year}.nc"),
            qc=res("{product}", "daily", _src, "{year}.qc.csv"),
        log:
            res("{product}", "logs", f"ingest_{_src}_{{year}}.log"),
        benchmark:
            res("{product}", "benchmarks", f"ingest_{_src}_{{year}}.tsv")
        wildcard_constraints:
            product="|".join(_products_with(_src, "precip")),
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
