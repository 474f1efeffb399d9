# Rules of the 'synth_precip' stage.


# Precipitation OSSE: truth, every source in its real file layout, DEM and CMA gauges.
rule synthesize_precip_demo:
    output:
        manifest=res("{product}", "raw", "manifest.json"),
    log:
        res("{product}", "logs", "synthesize_precip_demo.log"),
    benchmark:
        res("{product}", "benchmarks", "synthesize_precip_demo.tsv")
    wildcard_constraints:
        product="|".join(p for p in products_of("precip") if is_synthetic(p))
        or "NO_PRECIP_DEMO",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("synthesize_precip_demo")
    resources:
        mem_mb=cost_mem("synthesize_precip_demo"),
        runtime=cost_runtime("synthesize_precip_demo"),
    params:
        grid=product_param("grid"),
        start=product_param("period.start"),
        end=product_param("period.end"),
        utc_start_hour=product_param("day_window.utc_start_hour"),
        sources=lambda wc: {
            s: {
                "format": source_cfg(wc.product, s)["format"],
                "errors": pcfg(wc.product)["synthetic"]["sources"].get(s, {}),
            }
            for s in sources(wc.product)
        },
        margin=lambda wc: max(
            [source_cfg(wc.product, s)["margin"] for s in sources(wc.product)] + [0.0]
        ),
        n_stations=product_param("synthetic.n_stations"),
        gauge_noise=product_param("synthetic.gauge_noise"),
        truth=product_param("synthetic.truth"),
        seed=lambda wc: (
            config["seed"]
            if pcfg(wc.product)["synthetic"]["seed"] is None
            else pcfg(wc.product)["synthetic"]["seed"]
        ),
    script:
        "../scripts/synthesize_precip_demo.py"


# Publish the OSSE truth of one year (staged by the synthesizer) for scoring.
rule truth_precip:
    input:
        manifest=res("{product}", "raw", "manifest.json"),
    output:
        truth=res("{product}", "truth", "{year}.nc"),
    log:
        res("{product}", "logs", "truth_precip_{year}.log"),
    wildcard_constraints:
        product="|".join(p for p in products_of("precip") if is_synthetic(p))
        or "NO_PRECIP_DEMO",
    localrule: True
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    params:
        staged=lambda wc: res(wc.product, "raw", "truth", f"{wc.year}.nc"),
    shell:
        "cp {params.staged} {output.truth} 2> {log}"
