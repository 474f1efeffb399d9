# Rules of the 'downscale' stage: native daily fields -> the product grid, the interpolation
# comparison at the stations, and the station samples of the precipitation products.


include: "downscale_common.smk"


# One source-year of daily fields regridded to the product grid (absent stays absent).
rule downscale:
    input:
        daily=res("{product}", "daily", "{source}", "{year}.nc"),
    output:
        downscaled=res("{product}", "downscaled", "{source}", "{year}.nc"),
    log:
        res("{product}", "logs", "downscale_{source}_{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "downscale_{source}_{year}.tsv")
    wildcard_constraints:
        product=downscale_products(False),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("downscale")
    resources:
        mem_mb=cost_mem("downscale"),
        runtime=cost_runtime("downscale"),
    params:
        source=lambda wc: wc.source,
        grid=product_param("grid"),
        method=product_param("downscale.method"),
        variable_methods=product_param("downscale.variable_methods"),
        time_block=product_param("downscale.time_block"),
        utc_start_hour=product_param("day_window.utc_start_hour"),
    script:
        "../scripts/downscale.py"


# Same, for products whose config marks the downscaled files temporary.
use rule downscale as downscale_temporary with:
    output:
        downscaled=temp(res("{product}", "downscaled", "{source}", "{year}.nc")),
    wildcard_constraints:
        product=downscale_products(True),


# Each source regridded by each compared method at the station cells, scored against gauges.
rule compare_interpolation_precip:
    input:
        daily=lambda wc: [
            res(wc.product, "daily", s, f"{y}.nc")
            for s in sources(wc.product)
            for y in years(wc.product)
        ],
        stations=res("{product}", "stations", "stations.csv"),
        observations=res("{product}", "stations", "daily.parquet"),
    output:
        scores=res("{product}", "evaluation", "interpolation.csv"),
    log:
        res("{product}", "logs", "compare_interpolation_precip.log"),
    benchmark:
        res("{product}", "benchmarks", "compare_interpolation_precip.tsv")
    wildcard_constraints:
        product="|".join(products_of("precip")) or "NO_PRODUCT",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("compare_interpolation_precip")
    resources:
        mem_mb=cost_mem("compare_interpolation_precip"),
        runtime=cost_runtime("compare_interpolation_precip"),
    params:
        grid=product_param("grid"),
        sources=lambda wc: sources(wc.product),
        methods=product_param("downscale.compare"),
        variable="precip",
    script:
        "../scripts/compare_interpolation_precip.py"


# Station samples: patch cubes per station over the whole period, and the point table.
rule samples_precip:
    input:
        downscaled=lambda wc: downscaled_files(wc.product),
        static=res("{product}", "static.nc"),
        stations=res("{product}", "stations", "stations.csv"),
        observations=res("{product}", "stations", "daily.parquet"),
    output:
        patches=res("{product}", "samples", "patches.nc"),
        points=res("{product}", "samples", "points.parquet"),
    log:
        res("{product}", "logs", "samples_precip.log"),
    benchmark:
        res("{product}", "benchmarks", "samples_precip.tsv")
    wildcard_constraints:
        product="|".join(products_of("precip")) or "NO_PRODUCT",
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("samples_precip")
    resources:
        mem_mb=cost_mem("samples_precip"),
        runtime=cost_runtime("samples_precip"),
    params:
        grid=product_param("grid"),
        sources=lambda wc: sources(wc.product),
        years=lambda wc: all_years(wc.product),
        start=product_param("period.start"),
        end=product_param("period.end"),
        patch=product_param("samples.patch"),
        window_days=product_param("samples.window_days"),
        time_block=product_param("downscale.time_block"),
        variable="precip",
    script:
        "../scripts/samples_precip.py"


register_target(
    "precip", "{results}/{product}/evaluation/interpolation.csv", when=_ingest_ready
)
