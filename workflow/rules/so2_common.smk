# Input functions, params and resources of the 'so2_model' stage (kept apart from its rules).
#
# Every SO2 rule constrains {product} to the so2 products (so2_products()), so no ruleorder
# against the precip rules that write the same file names is needed. Each rule gets only the
# settings it reads (changing a SHAP or prediction setting re-runs nothing upstream).

SO2_SCHEMES = ("sample_cv", "site_cv", "block_cv", "region")
# Keys of model.features that shape the station feature table (the rest only change the
# model's feature matrix: switches, random IDs, convolution).
SO2_TABLE_FEATURES = (
    "dynamic",
    "static",
    "sizes",
    "spatial_variables",
    "static_sizes",
    "spatial_static",
    "upwind_km",
    "upwind_static",
    "upwind_size",
    "wind",
)


def so2_products():
    return "|".join(products_of("so2")) or "NO_PRODUCT"


def so2_dynamic(product, year=None):
    """Downscaled daily fields of every source (one year, or the whole period)."""
    ys = [year] if year is not None else all_years(product)
    return [
        res(product, "downscaled", s, f"{y}.nc") for y in ys for s in sources(product)
    ]


def so2_features(product):
    """The model's feature settings (all of model.features, with the master seed)."""
    return {**pcfg(product)["model"]["features"], "seed": config["seed"]}


def so2_table_features(product):
    """The feature settings the station feature table depends on."""
    f = pcfg(product)["model"]["features"]
    return {k: f[k] for k in SO2_TABLE_FEATURES if k in f}


def so2_model_cfg(product, models=("lightgbm",)):
    """The estimator sections of model that ``models`` read (the registry's ``settings``)."""
    m = pcfg(product)["model"]
    return {k: m[k] for k in model_settings_keys("so2", models)}


def so2_model_files(product):
    return {
        k: res(product, "model", "so2", f)
        for k, f in (
            ("txt", "model.txt"),
            ("npz", "features.npz"),
            ("json", "model.json"),
        )
    }


def so2_compiled_files(product):
    """The compiled trees beside model.txt (model.predictor lleaves; compile_so2)."""
    return {
        k: res(product, "model", "so2", f)
        for k, f in (("obj", "model.lleaves.o"), ("record", "model.lleaves.json"))
    }


def so2_predict_model(product):
    """The stored model a predict job reads, with its compiled trees for lleaves."""
    out = {k: v for k, v in so2_model_files(product).items()}
    if product_value(product, "model.predictor") == "lleaves":
        out.update(so2_compiled_files(product))
    return out


def so2_cv(product):
    return pcfg(product)["cv"]


def so2_schemes(product):
    return list(so2_cv(product)["so2_schemes"])


def so2_scheme_models(product, scheme):
    from gridfuse.models.so2 import scheme_models

    return scheme_models(
        scheme, so2_cv(product), pcfg(product)["model"]["so2_baselines"]
    )


def so2_folds(product, scheme):
    """Fold labels of a scheme (numbers, or region names), from the config alone."""
    from gridfuse.models.so2 import scheme_folds

    try:
        return scheme_folds(scheme, so2_cv(product))
    except ValueError as err:
        raise WorkflowError(f"products.{product}.{err}")


def so2_scheme_cfg(product, scheme):
    """The cv settings one scheme reads."""
    c = so2_cv(product)
    keys = {
        "sample_cv": ("n_splits",),
        "site_cv": ("n_splits",),
        "block_cv": ("block_size", "block_splits"),
        "region": ("regions",),
    }[scheme]
    return {k: c[k] for k in keys}


def so2_fold_files(product):
    return [
        res(product, "evaluation", "so2_cv", s, f"{k}.parquet")
        for s in so2_schemes(product)
        for k in so2_folds(product, s)
    ]


def so2_osse_models(product):
    """Models scored osse_grid (synthetic products only): the full model from its product,
    the baselines (with cv.so2_osse_baselines) gridded for it."""
    if not is_synthetic(product):
        return []
    base = pcfg(product)["model"]["so2_baselines"]
    return ["lightgbm"] + (list(base) if so2_cv(product)["so2_osse_baselines"] else [])


def so2_grid_inputs(product, model):
    """Inputs of one model's osse_grid scores: the product (full model) or the fields the
    baseline's gridded prediction needs; the truth; the domain mask."""
    out = {"truth": [res(product, "truth", f"{y}.nc") for y in years(product)]}
    if model == "lightgbm":
        out["products"] = [res(product, "product", f"{y}.nc") for y in years(product)]
    else:
        out["dynamic"] = so2_dynamic(product)
        out["static"] = res(product, "static.nc")
        out["table"] = res(product, "samples", "so2_stations.parquet")
    return {**out, **mask_input(product)}


def so2_variants(product):
    """Ablation variants of the configured features (full, no_<t>, with_<t>)."""
    from gridfuse.features import FeatureConfig
    from gridfuse.models.so2 import ablation_variants

    return list(ablation_variants(FeatureConfig.from_dict(so2_features(product))))


def so2_ablation_osse_inputs(product):
    """OSSE inputs of an ablation variant (every variant gridded): fields, static layers,
    truth, the domain mask."""
    if not (is_synthetic(product) and so2_cv(product)["so2_osse_ablation"]):
        return {}
    return {
        "dynamic": so2_dynamic(product),
        "static": res(product, "static.nc"),
        "truth": [res(product, "truth", f"{y}.nc") for y in years(product)],
        **mask_input(product),
    }


def so2_ablation_cfg(product):
    c = so2_cv(product)
    out = {
        "ablation_schemes": c["ablation_schemes"],
        "so2_osse_every": c["so2_osse_every"],
    }
    for s in c["ablation_schemes"]:
        out.update(so2_scheme_cfg(product, s))
    return out


def so2_provenance(product):
    """The config sections a product file's values depend on (hashed into its provenance)."""
    c = pcfg(product)
    keys = ("kind", "grid", "period", "day_window", "sources", "stations", "static")
    out = {k: c[k] for k in keys if k in c}
    out["mask"] = mask_spec(product)
    out["downscale"] = c.get("downscale", {})
    out["model"] = {"features": so2_features(product), **so2_model_cfg(product)}
    return out


def so2_days(product):
    start, end = period(product)
    return (end - start).days + 1
