# Input functions of the domain mask (mask.smk).


def has_mask(product):
    m = pcfg(product).get("mask") or {}
    return bool(m.get("path") or m.get("box") or m.get("polygon"))


# mask keys the rasterization reads: `url` only says where a missing file comes from and
# `area_share` prices a missing file in `gridfuse plan`; neither reruns a job
MASK_KEYS = ("path", "layer", "where", "values", "box", "polygon", "rule")


def mask_spec(product):
    """The product's mask settings that decide which cells are inside."""
    m = pcfg(product).get("mask") or {}
    return {k: m[k] for k in MASK_KEYS if k in m}


def mask_input(product):
    """{"mask": mask.nc} for a product with a mask, else {} (every cell is inside)."""
    return {"mask": res(product, "mask.nc")} if has_mask(product) else {}


def mask_file(wildcards):
    path = pcfg(wildcards.product)["mask"].get("path")
    return [path] if path and not PLANNING else []


def check_mask_files():
    """Stop before any job when a configured mask file is missing, naming the key."""
    missing = []
    for product in PRODUCTS:
        m = pcfg(product).get("mask") or {}
        if m.get("path") and not Path(m["path"]).exists():
            where = m.get("url") or "see the preset's comment on mask"
            missing.append(
                f"  products.{product}.mask.path: {m['path']} not found (data: {where})"
            )
    if missing:
        raise WorkflowError("mask files are missing:\n" + "\n".join(missing))


if not PLANNING:  # `gridfuse plan` needs no raw data
    check_mask_files()
