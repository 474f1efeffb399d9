# Input functions and paths of the 'so2_model' stage (kept apart from its rules).


def so2_dynamic(product, year=None):
    """Downscaled daily fields of every source (one year, or the whole period)."""
    ys = [year] if year is not None else all_years(product)
    return [
        res(product, "downscaled", s, f"{y}.nc") for y in ys for s in sources(product)
    ]


def so2_features(product):
    return {**pcfg(product)["model"]["features"], "seed": config["seed"]}


def so2_model_files(product):
    return {
        k: res(product, "model", "so2", f)
        for k, f in (
            ("txt", "model.txt"),
            ("npz", "features.npz"),
            ("json", "model.json"),
        )
    }


def so2_osse_inputs(product):
    """OSSE inputs of cross_validate: the product and the truth; with osse baselines also
    the fields the baselines' gridded predictions need."""
    # also asked for precip products while Snakemake weighs this rule against
    # cross_validate_precip (ruleorder); their cv section has no so2 keys
    if pcfg(product)["kind"] != "so2" or not is_synthetic(product):
        return {}
    out = {
        "products": [res(product, "product", f"{y}.nc") for y in years(product)],
        "truth": [res(product, "truth", f"{y}.nc") for y in years(product)],
    }
    if pcfg(product)["cv"]["so2_osse_baselines"]:
        out["dynamic"] = so2_dynamic(product)
        out["static"] = res(product, "static.nc")
    return out


def so2_ablation_osse_inputs(product):
    """OSSE inputs of the ablation (every variant gridded): fields, static layers, truth."""
    if not (is_synthetic(product) and pcfg(product)["cv"]["so2_osse_ablation"]):
        return {}
    return {
        "dynamic": so2_dynamic(product),
        "static": res(product, "static.nc"),
        "truth": [res(product, "truth", f"{y}.nc") for y in years(product)],
    }


def so2_days(product):
    start, end = period(product)
    return (end - start).days + 1
