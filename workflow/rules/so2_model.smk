# Rules of the 'so2_model' stage: station feature table, LightGBM training, CV of the full
# model and its baselines, ablation, SHAP, and the gridded daily product.


include: "so2_common.smk"


# Station-day feature table: fields, neighbourhood means and static layers at station pixels.
rule so2_samples:
    input:
        dynamic=lambda wc: so2_dynamic(wc.product),
        static=res("{product}", "static.nc"),
        daily=res("{product}", "stations", "daily.parquet"),
        stations=res("{product}", "stations", "stations.csv"),
    output:
        table=res("{product}", "samples", "so2_stations.parquet"),
    log:
        res("{product}", "logs", "so2_samples.log"),
    benchmark:
        res("{product}", "benchmarks", "so2_samples.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: mem_for_cells(
            wc.product, days=32, factor=12.0, attempt=attempt
        ),
        runtime=lambda wc, attempt: runtime_for(
            10 + so2_days(wc.product) // 30, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
    script:
        "../scripts/so2_samples.py"


# The full LightGBM model with its stored random IDs, normalization, kernels and feature list.
rule so2_train:
    input:
        table=rules.so2_samples.output.table,
    output:
        **so2_model_files("{product}"),
    log:
        res("{product}", "logs", "so2_train.log"),
    benchmark:
        res("{product}", "benchmarks", "so2_train.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(wc.product, attempt=attempt),
        runtime=lambda wc, threads, attempt: so2_fit_runtime(
            wc.product, 0.002, threads, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: pcfg(wc.product)["model"],
        seed=config["seed"],
    script:
        "../scripts/so2_train.py"


# Out-of-fold scores of the full model and the baselines in the same folds (+ osse_grid).
rule so2_cross_validate:
    input:
        unpack(lambda wc: so2_osse_inputs(wc.product)),
        table=rules.so2_samples.output.table,
    output:
        scores=res("{product}", "evaluation", "scores.csv"),
        oof=res("{product}", "evaluation", "so2_oof.parquet"),
    log:
        res("{product}", "logs", "so2_cross_validate.log"),
    benchmark:
        res("{product}", "benchmarks", "so2_cross_validate.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(wc.product, forest=True, attempt=attempt),
        runtime=lambda wc, threads, attempt: so2_fit_runtime(
            wc.product, 0.075, threads, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: pcfg(wc.product)["model"],
        cv=lambda wc: pcfg(wc.product)["cv"],
        seed=config["seed"],
    script:
        "../scripts/so2_cross_validate.py"


# The full model with each technique toggled in turn (site_cv, block_cv; osse_grid in an OSSE).
rule so2_ablation:
    input:
        unpack(lambda wc: so2_ablation_osse_inputs(wc.product)),
        table=rules.so2_samples.output.table,
    output:
        ablation=res("{product}", "evaluation", "ablation.csv"),
    log:
        res("{product}", "logs", "so2_ablation.log"),
    benchmark:
        res("{product}", "benchmarks", "so2_ablation.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(wc.product, attempt=attempt),
        runtime=lambda wc, threads, attempt: so2_fit_runtime(
            wc.product, 0.035, threads, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: pcfg(wc.product)["model"],
        cv=lambda wc: pcfg(wc.product)["cv"],
        seed=config["seed"],
    script:
        "../scripts/so2_ablation.py"


# TreeSHAP (LightGBM pred_contrib) of the full model on a sample of station-days.
rule so2_explain:
    input:
        unpack(lambda wc: so2_model_files(wc.product)),
        table=rules.so2_samples.output.table,
    output:
        table=res("{product}", "evaluation", "shap_mean_abs.csv"),
        beeswarm=report(
            res("{product}", "evaluation", "figures", "shap_beeswarm.png"),
            caption="../report/shap.rst",
            category="{product}",
            subcategory="SHAP",
        ),
        bar=report(
            res("{product}", "evaluation", "figures", "shap_bar.png"),
            caption="../report/shap.rst",
            category="{product}",
            subcategory="SHAP",
        ),
    log:
        res("{product}", "logs", "so2_explain.log"),
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(wc.product, copies=2, attempt=attempt),
        runtime=lambda wc, attempt: runtime_for(20, attempt),
    params:
        samples=lambda wc: pcfg(wc.product)["model"]["shap_samples"],
        seed=config["seed"],
    script:
        "../scripts/so2_explain.py"


# Gridded daily SO2 of one year, predicted in tiles; NetCDF and (optionally) daily COGs.
rule so2_predict:
    input:
        unpack(lambda wc: so2_model_files(wc.product)),
        dynamic=lambda wc: so2_dynamic(wc.product, wc.year),
        static=res("{product}", "static.nc"),
    output:
        netcdf=res("{product}", "product", "{year}.nc"),
        geotiff=directory(res("{product}", "product", "geotiff", "{year}")),
    log:
        res("{product}", "logs", "so2_predict_{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "so2_predict_{year}.tsv")
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: threads_for(grid_cells(wc.product), 1_000_000, lo=2, hi=16)
    resources:
        # streamed by blocks of predict_days: the block, its compressed write, one tile
        mem_mb=lambda wc, attempt: mem_for_cells(
            wc.product,
            days=pcfg(wc.product)["model"]["predict_days"],
            base_mb=2000,
            factor=3.0,
            attempt=attempt,
        ),
        # ~80 us per cell-day and thread (demo: 39 us with 2 threads), x1.5
        runtime=lambda wc, threads, attempt: runtime_for(
            20 + 1.5 * so2_cell_days(wc.product, wc.year) * 80e-6 / threads / 60,
            attempt,
        ),
    params:
        tile=lambda wc: pcfg(wc.product)["model"]["predict_tile"],
        days=lambda wc: pcfg(wc.product)["model"]["predict_days"],
        geotiff=lambda wc: pcfg(wc.product)["outputs"]["geotiff"],
        gzip=lambda wc: pcfg(wc.product)["outputs"]["gzip"],
        start=lambda wc: pcfg(wc.product)["period"]["start"],
        end=lambda wc: pcfg(wc.product)["period"]["end"],
        cfg=lambda wc: pcfg(wc.product),
        sources=lambda wc: sources(wc.product),
    script:
        "../scripts/so2_predict.py"


for _t in (
    "{results}/{product}/evaluation/scores.csv",
    "{results}/{product}/evaluation/ablation.csv",
    "{results}/{product}/evaluation/shap_mean_abs.csv",
    "{results}/{product}/product/{year}.nc",
):
    register_target(
        "so2",
        _t,
        when=lambda p: workflow.is_rule("downscale") or not is_synthetic(p),
    )
# the model is a target too: deleted, it is rebuilt with everything made from it
register_target(
    "so2",
    lambda p: list(so2_model_files(p).values()),
    when=lambda p: workflow.is_rule("downscale") or not is_synthetic(p),
)
