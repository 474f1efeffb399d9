# Rules of the 'synth_so2' stage.


# SO2 OSSE: truth, TROPOMI L2 orbits, ERA5 hourly met, static GeoTIFFs and CNEMC stations.
rule synthesize_so2_demo:
    output:
        manifest=res("{product}", "raw", "manifest.json"),
    log:
        res("{product}", "logs", "synthesize_so2_demo.log"),
    benchmark:
        res("{product}", "benchmarks", "synthesize_so2_demo.tsv")
    wildcard_constraints:
        product="|".join(synth_so2_products()) or "NO_SO2_DEMO",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("synthesize_so2_demo")
    resources:
        mem_mb=cost_mem("synthesize_so2_demo"),
        runtime=cost_runtime("synthesize_so2_demo"),
    params:
        grid=product_param("grid"),
        start=product_param("period.start"),
        end=product_param("period.end"),
        utc_start_hour=product_param("day_window.utc_start_hour"),
        knobs=lambda wc: pcfg(wc.product)["synthetic"].get("so2", {}),
        seed=config["seed"],
    script:
        "../scripts/synthesize_so2_demo.py"


# Publish the SO2 OSSE truth of one year (staged by the synthesizer) for scoring.
rule truth_so2:
    input:
        manifest=res("{product}", "raw", "manifest.json"),
    output:
        truth=res("{product}", "truth", "{year}.nc"),
    log:
        res("{product}", "logs", "truth_so2_{year}.log"),
    wildcard_constraints:
        product="|".join(synth_so2_products()) or "NO_SO2_DEMO",
    localrule: True
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    params:
        staged=lambda wc: res(wc.product, "raw", "truth", f"{wc.year}.nc"),
    shell:
        "cp {params.staged} {output.truth} 2> {log}"
