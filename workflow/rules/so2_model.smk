# Rules of the 'so2_model' stage: station feature table, LightGBM training, CV of the full
# model and its baselines (one job per scheme x fold), ablation (one job per variant), SHAP,
# and the gridded daily product.


include: "so2_common.smk"


# Station-day feature table: fields, neighbourhood means and static layers at station pixels.
rule samples_so2:
    input:
        dynamic=lambda wc: so2_dynamic(wc.product),
        static=res("{product}", "static.nc"),
        daily=res("{product}", "stations", "daily.parquet"),
        stations=res("{product}", "stations", "stations.csv"),
    output:
        table=res("{product}", "samples", "so2_stations.parquet"),
    log:
        res("{product}", "logs", "samples_so2.log"),
    benchmark:
        res("{product}", "benchmarks", "samples_so2.tsv")
    wildcard_constraints:
        product=so2_products(),
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
        features=lambda wc: so2_table_features(wc.product),
    script:
        "../scripts/so2_samples.py"


# The full LightGBM model with its stored random IDs, normalization, kernels and feature list.
rule train_so2:
    input:
        table=rules.samples_so2.output.table,
    output:
        **so2_model_files("{product}"),
    log:
        res("{product}", "logs", "train_so2.log"),
    benchmark:
        res("{product}", "benchmarks", "train_so2.tsv")
    wildcard_constraints:
        product=so2_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(wc.product, attempt=attempt),
        runtime=lambda wc, threads, attempt: so2_fit_runtime(
            wc.product,
            so2_fit_seconds_per_row(wc.product, "lightgbm"),
            threads,
            attempt,
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: so2_model_cfg(wc.product),
        seed=config["seed"],
    script:
        "../scripts/so2_train.py"


# Out-of-fold predictions of one fold of one scheme: each of the scheme's models refitted.
rule cross_validate_fold_so2:
    input:
        table=rules.samples_so2.output.table,
    output:
        oof=res("{product}", "evaluation", "so2_cv", "{scheme}", "{fold}.parquet"),
    log:
        res("{product}", "logs", "cross_validate_fold_so2_{scheme}_{fold}.log"),
    benchmark:
        res("{product}", "benchmarks", "cross_validate_fold_so2_{scheme}_{fold}.tsv")
    wildcard_constraints:
        product=so2_products(),
        scheme="|".join(SO2_SCHEMES),
        fold=r"[A-Za-z0-9_]+",
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fold_mem(wc.product, wc.scheme, attempt=attempt),
        runtime=lambda wc, threads, attempt: so2_fold_runtime(
            wc.product, wc.scheme, threads, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        models=lambda wc: so2_scheme_models(wc.product, wc.scheme),
        model=lambda wc: so2_model_cfg(
            wc.product, so2_scheme_models(wc.product, wc.scheme)
        ),
        cv=lambda wc: so2_scheme_cfg(wc.product, wc.scheme),
        seed=config["seed"],
    script:
        "../scripts/so2_cross_validate_fold.py"


# osse_grid scores of one model (synthetic products): the full model from its product, a
# baseline fitted on every station-day and gridded on every k-th day; inside the mask.
rule score_grid_so2:
    input:
        unpack(lambda wc: so2_grid_inputs(wc.product, wc.model)),
    output:
        scores=res("{product}", "evaluation", "so2_grid", "{model}.csv"),
    log:
        res("{product}", "logs", "score_grid_so2_{model}.log"),
    benchmark:
        res("{product}", "benchmarks", "score_grid_so2_{model}.tsv")
    wildcard_constraints:
        product=so2_products(),
        model=r"lightgbm|lightgbm_plain|rf_ps|lstm",
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(
            wc.product, forest=wc.model == "rf_ps", attempt=attempt
        ),
        runtime=lambda wc, threads, attempt: so2_fit_runtime(
            wc.product, 0.01, threads, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: so2_model_cfg(wc.product, [wc.model]),
        every=lambda wc: so2_cv(wc.product)["so2_osse_every"],
        seed=config["seed"],
    script:
        "../scripts/so2_score_grid.py"


# scores.csv of the full model and the baselines: the folds' out-of-fold predictions scored
# per scheme (and per held-out region), plus the osse_grid scores of a synthetic product.
rule cross_validate_so2:
    input:
        folds=lambda wc: so2_fold_files(wc.product),
        grid=lambda wc: [
            res(wc.product, "evaluation", "so2_grid", f"{m}.csv")
            for m in so2_osse_models(wc.product)
        ],
    output:
        scores=res("{product}", "evaluation", "scores.csv"),
        oof=res("{product}", "evaluation", "so2_oof.parquet"),
    log:
        res("{product}", "logs", "cross_validate_so2.log"),
    wildcard_constraints:
        product=so2_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: retry(1000 + 2 * so2_table_mb(wc.product), attempt),
        runtime=lambda wc, attempt: runtime_for(10, attempt),
    script:
        "../scripts/so2_cross_validate.py"


# One ablation variant: its LightGBM in every fold of the ablation schemes (+ osse_grid).
rule ablation_variant_so2:
    input:
        unpack(lambda wc: so2_ablation_osse_inputs(wc.product)),
        table=rules.samples_so2.output.table,
    output:
        scores=res("{product}", "evaluation", "so2_ablation", "{variant}.csv"),
    log:
        res("{product}", "logs", "ablation_variant_so2_{variant}.log"),
    benchmark:
        res("{product}", "benchmarks", "ablation_variant_so2_{variant}.tsv")
    wildcard_constraints:
        product=so2_products(),
        variant=r"full|(no|with)_[a-z_]+",
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: so2_threads(wc.product)
    resources:
        mem_mb=lambda wc, attempt: so2_fit_mem(wc.product, attempt=attempt),
        runtime=lambda wc, threads, attempt: so2_variant_runtime(
            wc.product, threads, attempt
        ),
    params:
        grid=lambda wc: pcfg(wc.product)["grid"],
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: so2_model_cfg(wc.product),
        cv=lambda wc: so2_ablation_cfg(wc.product),
        seed=config["seed"],
    script:
        "../scripts/so2_ablation_variant.py"


# The ablation table: every variant against the full model (delta per scheme and metric).
rule ablation_so2:
    input:
        variants=lambda wc: [
            res(wc.product, "evaluation", "so2_ablation", f"{v}.csv")
            for v in so2_variants(wc.product)
        ],
    output:
        ablation=res("{product}", "evaluation", "ablation.csv"),
    log:
        res("{product}", "logs", "ablation_so2.log"),
    wildcard_constraints:
        product=so2_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: retry(1000, attempt),
        runtime=lambda wc, attempt: runtime_for(5, attempt),
    params:
        features=lambda wc: so2_features(wc.product),
    script:
        "../scripts/so2_ablation.py"


# TreeSHAP (LightGBM pred_contrib) of the full model on a sample of station-days.
rule explain_so2:
    input:
        unpack(lambda wc: so2_model_files(wc.product)),
        table=rules.samples_so2.output.table,
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
        res("{product}", "logs", "explain_so2.log"),
    wildcard_constraints:
        product=so2_products(),
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


# Gridded daily SO2 of one year, predicted in tiles (side by side, threads of the job), only
# inside the domain mask; NetCDF and (optionally) daily COGs.
rule predict_so2:
    input:
        unpack(lambda wc: so2_model_files(wc.product)),
        unpack(lambda wc: mask_input(wc.product)),
        dynamic=lambda wc: so2_dynamic(wc.product, wc.year),
        static=res("{product}", "static.nc"),
    output:
        netcdf=res("{product}", "product", "{year}.nc"),
        geotiff=directory(res("{product}", "product", "geotiff", "{year}")),
    log:
        res("{product}", "logs", "predict_so2_{year}.log"),
    benchmark:
        res("{product}", "benchmarks", "predict_so2_{year}.tsv")
    wildcard_constraints:
        product=so2_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: lambda wc: threads_for(grid_cells(wc.product), 1_000_000, lo=2, hi=16)
    resources:
        # streamed by blocks of predict_days: the block, its compressed write, the tiles
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
        provenance=lambda wc: so2_provenance(wc.product),
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
