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
    threads: cost_threads("samples_so2")
    resources:
        mem_mb=cost_mem("samples_so2"),
        runtime=cost_runtime("samples_so2"),
    params:
        grid=product_param("grid"),
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
    threads: cost_threads("train_so2")
    resources:
        mem_mb=cost_mem("train_so2"),
        runtime=cost_runtime("train_so2"),
    params:
        grid=product_param("grid"),
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: so2_model_cfg(wc.product),
        seed=config["seed"],
    script:
        "../scripts/so2_train.py"


# The full model's trees compiled to machine code once (model.predictor lleaves); every
# predict_so2 job loads the object instead of walking the trees in LightGBM.
rule compile_so2:
    input:
        txt=rules.train_so2.output.txt,
    output:
        **so2_compiled_files("{product}"),
    log:
        res("{product}", "logs", "compile_so2.log"),
    benchmark:
        res("{product}", "benchmarks", "compile_so2.tsv")
    wildcard_constraints:
        product=so2_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("compile_so2")
    resources:
        mem_mb=cost_mem("compile_so2"),
        runtime=cost_runtime("compile_so2"),
    script:
        "../scripts/so2_compile.py"


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
    threads: cost_threads("cross_validate_fold_so2")
    resources:
        mem_mb=cost_mem("cross_validate_fold_so2"),
        runtime=cost_runtime("cross_validate_fold_so2"),
    params:
        grid=product_param("grid"),
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
# baseline fitted on every station-day and gridded on every k-th day; inside the mask (a
# LightGBM baseline by its compiled trees when model.predictor is lleaves and that pays).
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
        model="|".join(model_names("so2")),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("score_grid_so2")
    resources:
        mem_mb=cost_mem("score_grid_so2"),
        runtime=cost_runtime("score_grid_so2"),
    params:
        grid=product_param("grid"),
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: so2_model_cfg(wc.product, [wc.model]),
        predictor=product_param("model.predictor"),
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
    benchmark:
        res("{product}", "benchmarks", "cross_validate_so2.tsv")
    wildcard_constraints:
        product=so2_products(),
    conda:
        "../../envs/gridfuse.yaml"
    threads: cost_threads("cross_validate_so2")
    resources:
        mem_mb=cost_mem("cross_validate_so2"),
        runtime=cost_runtime("cross_validate_so2"),
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
    threads: cost_threads("ablation_variant_so2")
    resources:
        mem_mb=cost_mem("ablation_variant_so2"),
        runtime=cost_runtime("ablation_variant_so2"),
    params:
        grid=product_param("grid"),
        features=lambda wc: so2_features(wc.product),
        model=lambda wc: so2_model_cfg(wc.product),
        predictor=product_param("model.predictor"),
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
    threads: cost_threads("ablation_so2")
    resources:
        mem_mb=cost_mem("ablation_so2"),
        runtime=cost_runtime("ablation_so2"),
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
    threads: cost_threads("explain_so2")
    resources:
        mem_mb=cost_mem("explain_so2"),
        runtime=cost_runtime("explain_so2"),
    params:
        samples=product_param("model.shap_samples"),
        seed=config["seed"],
    script:
        "../scripts/so2_explain.py"


# Gridded daily SO2 of one year, predicted in tiles (side by side, threads of the job), only
# inside the domain mask, by the compiled trees or LightGBM (model.predictor); NetCDF and
# (optionally) daily COGs.
rule predict_so2:
    input:
        unpack(lambda wc: so2_predict_model(wc.product)),
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
    threads: cost_threads("predict_so2")
    resources:
        mem_mb=cost_mem("predict_so2"),
        runtime=cost_runtime("predict_so2"),
    params:
        tile=product_param("model.predict_tile"),
        days=product_param("model.predict_days"),
        predictor=product_param("model.predictor"),
        geotiff=product_param("outputs.geotiff"),
        gzip=product_param("outputs.gzip"),
        start=product_param("period.start"),
        end=product_param("period.end"),
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
