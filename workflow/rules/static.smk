# Rules of the 'static' stage.


# Warp the static layers (elevation, slope, land cover, NDVI, population, roads) onto the target grid.
rule build_static:
    input:
        layers=static_inputs,
    output:
        static=res("{product}", "static.nc"),
    log:
        res("{product}", "logs", "build_static.log"),
    benchmark:
        res("{product}", "benchmarks", "build_static.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("build_static")
    resources:
        mem_mb=cost_mem("build_static"),
        runtime=cost_runtime("build_static"),
    params:
        layers=lambda wc: static_layers(wc.product),
        grid=product_param("grid"),
    script:
        "../scripts/build_static.py"


for _kind in KINDS:
    register_target(
        _kind,
        "{results}/{product}/static.nc",
        when=lambda p: not is_synthetic(p)
        or workflow.is_rule(f"synthesize_{pcfg(p)['kind']}_demo"),
    )
