# Domain masks (products.<name>.mask): a vector or raster boundary file, or a box/polygon in
# the config, rasterized once per product onto its grid (gridfuse.mask). Cells outside are
# never predicted, are nodata in every output and are left out of the grid scores.


include: "mask_common.smk"


# The product's domain mask on its grid (1 inside, 0 outside).
rule build_mask:
    input:
        mask_file,
    output:
        mask=res("{product}", "mask.nc"),
    log:
        res("{product}", "logs", "build_mask.log"),
    benchmark:
        res("{product}", "benchmarks", "build_mask.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("build_mask")
    resources:
        mem_mb=cost_mem("build_mask"),
        runtime=cost_runtime("build_mask"),
    params:
        grid=product_param("grid"),
        mask=lambda wc: mask_spec(wc.product),
        key=lambda wc: f"products.{wc.product}.mask",
    script:
        "../scripts/build_mask.py"
