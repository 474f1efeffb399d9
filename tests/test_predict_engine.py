"""The MPFM inference engine: day windows on the device, tiles, masks, batches, precision,
prefetching, and the inference shortcuts of the network (each equal to the plain formula)."""

import numpy as np
import pandas as pd
import pytest
import torch

from gridfuse import quality
from gridfuse.models.convlstm import ConvLSTMCell
from gridfuse.models.mpfm import MPFM, MPFMConfig, _TemporalAttention
from gridfuse.models.train import FusionModel, Standardizer
from gridfuse.predict import (
    batch_days,
    day_windows,
    precision_mode,
    predict_grid,
    predict_tiles,
    tile_slices,
)

SMALL = dict(conv_channels=[4, 4], attention_heads=2, hidden=[4], head_hidden=8, window=5)


def _model(channels=("a", "b", "elevation"), seeds=(0,)):
    nets = []
    for s in seeds:
        torch.manual_seed(s)
        nets.append(MPFM(MPFMConfig.variant("mpfm", len(channels), **SMALL)).eval())
    std = Standardizer(list(channels), [c != "elevation" for c in channels], [0.4, 0.3, 3000.0],
                       [0.9, 0.7, 200.0])  # fmt: skip
    return FusionModel(nets, std, name="mpfm")


def _field(n_days=12, nlat=19, nlon=23, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.gamma(0.6, 3.0, (n_days, 3, nlat, nlon)).astype("f4")
    f[:, 2] = rng.normal(3000, 150, (nlat, nlon))
    f[3, 0, 5, 7] = np.nan
    return f


def _reader(field, days):
    def read(span):
        pos = days.get_indexer(span)
        out = field[np.clip(pos, 0, len(days) - 1)].copy()
        out[pos < 0] = np.nan
        return out

    return read


def test_day_windows_is_a_view_equal_to_stacked_windows():
    x = torch.arange(9 * 2 * 3 * 4, dtype=torch.float32).reshape(9, 2, 3, 4)
    w = day_windows(x, 5)
    assert w.shape == (5, 5, 2, 3, 4)
    assert w.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    np.testing.assert_array_equal(w.numpy(), np.stack([x[d : d + 5].numpy() for d in range(5)]))
    with pytest.raises(ValueError, match="no 5-day window"):
        day_windows(x[:4], 5)


def test_tile_slices_cover_the_grid_and_skip_tiles_outside_the_mask():
    tiles = tile_slices(10, 7, 4)
    cover = np.zeros((10, 7), int)
    for si, sj in tiles:
        cover[si, sj] += 1
    assert (cover == 1).all() and len(tiles) == 3 * 2
    mask = np.zeros((10, 7), bool)
    mask[9, 6] = True  # only the last tile holds an inside cell
    assert tile_slices(10, 7, 4, mask) == [(slice(8, 10), slice(4, 7))]
    with pytest.raises(ValueError, match="mask has shape"):
        tile_slices(10, 7, 4, mask[:5])


def test_transform_tensor_equals_the_numpy_standardization():
    std = _model().standardizer
    x = _field()
    a = std.transform(x, axis=1)
    b = std.transform_tensor(torch.from_numpy(x), dim=1).numpy()
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    assert b[3, 0, 5, 7] == 0.0  # NaN -> 0 (the training mean)


@pytest.mark.parametrize("prefetch", [True, False])
def test_grid_prediction_independent_of_tiles_batches_blocks_and_prefetch(prefetch):
    days = pd.date_range("2020-01-01", periods=12)
    field = _field()
    model = _model(seeds=(0, 1))
    read = _reader(field, days)
    ref = np.concatenate([b for _, b in predict_grid(model, read, days, tile=64, time_block=12)])
    got = np.concatenate(
        [b for _, b in predict_grid(model, read, days, tile=5, time_block=5, prefetch=prefetch)]
    )
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # one forward pass per day window vs all at once
    r, w = model.radius, model.window
    xs = model.standardizer.transform_tensor(torch.from_numpy(read(pd.date_range(
        days[0] - pd.Timedelta(days=w // 2), days[-1] + pd.Timedelta(days=w // 2)))), dim=1)  # fmt: skip
    xs = torch.nn.functional.pad(xs, (r, r, r, r))
    one = predict_tiles(model, xs, tile=8, batch=1).numpy()
    np.testing.assert_allclose(one, ref, rtol=1e-5, atol=1e-6)


def test_mask_leaves_outside_cells_nan_and_inside_cells_unchanged():
    days = pd.date_range("2020-01-01", periods=6)
    field = _field(n_days=6)
    model = _model()
    read = _reader(field, days)
    full = np.concatenate([b for _, b in predict_grid(model, read, days, tile=6)])
    mask = np.zeros(field.shape[-2:], bool)
    mask[2:9, 3:15] = True
    got = np.concatenate([b for _, b in predict_grid(model, read, days, tile=6, mask=mask)])
    assert np.isnan(got[:, ~mask]).all()
    np.testing.assert_allclose(got[:, mask], full[:, mask], rtol=1e-5, atol=1e-6)


def test_batch_days_follows_the_memory_budget():
    model = _model()
    per = model.nets[0].activation_bytes()
    assert per > 0
    assert batch_days(model, 100, per * 100 * 7) == 7
    assert batch_days(model, 100, 1.0) == 1  # never below one day
    assert batch_days(model, 100, per * 100 * 8, precision="bf16") == 16


def test_passes_are_even_and_cover_every_day_once():
    from gridfuse.predict import _passes

    assert _passes(16, 5) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert _passes(8, 3) == [(0, 2), (2, 5), (5, 8)]
    assert _passes(3, 8) == [(0, 3)]
    for n, b in [(1, 1), (7, 2), (16, 16), (31, 4)]:
        p = _passes(n, b)
        sizes = [d1 - d0 for d0, d1 in p]
        assert p[0][0] == 0 and p[-1][1] == n and all(a[1] == c[0] for a, c in zip(p, p[1:]))
        assert max(sizes) <= b and max(sizes) - min(sizes) <= 1 and len(p) == -(-n // b)


def test_bf16_within_tolerance_and_tf32_needs_cuda():
    days = pd.date_range("2020-01-01", periods=6)
    field = _field(n_days=6)
    model = _model()
    read = _reader(field, days)
    ref = np.concatenate([b for _, b in predict_grid(model, read, days, tile=32)])
    bf = np.concatenate([b for _, b in predict_grid(model, read, days, tile=32, precision="bf16")])
    rel = np.sqrt(np.mean((bf - ref) ** 2)) / np.sqrt(np.mean(ref**2))
    assert 0 < rel < 3e-2  # the tolerance benchmarks/mpfm_predict.py states for bf16
    with pytest.raises(ValueError, match="needs a CUDA device"):
        with precision_mode(torch.device("cpu"), "tf32"):
            pass
    with pytest.raises(ValueError, match="precision must be"):
        with precision_mode(torch.device("cpu"), "fp16"):
            pass


# ------------------------------------------------------------- the network's inference shortcuts
def test_convlstm_zero_state_shortcut_equals_the_zero_state_step():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, 3)
    x = torch.randn(2, 3, 9, 9)
    h1, (_, c1) = cell(x)
    zeros = torch.zeros(2, 4, 9, 9)
    h2, (_, c2) = cell(x, (zeros, zeros))
    torch.testing.assert_close(h1, h2, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c1, c2, rtol=1e-6, atol=1e-6)


def test_attention_equals_the_einsum_formula():
    torch.manual_seed(0)
    att = _TemporalAttention(8, 2)
    x = torch.randn(3, 8, 5, 4, 6)
    b, c, t, h, w = x.shape
    d = c // 2
    qkv = torch.nn.functional.conv3d(x, att.qkv.weight, att.qkv.bias)
    q, k, v = qkv.reshape(b, 3, 2, d, t, h, w).unbind(1)
    s = torch.einsum("bndthw,bndshw->bntshw", q, k) * d**-0.5
    ref = torch.einsum("bntshw,bndshw->bndthw", s.softmax(dim=3), v).reshape(b, c, t, h, w)
    ref = x + torch.nn.functional.conv3d(ref, att.out.weight, att.out.bias)
    torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the in-place product path
        torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-5)


def test_folded_batch_norm_equals_the_module_sequence_in_eval():
    torch.manual_seed(0)
    net = MPFM(MPFMConfig.variant("mpfm", 3, **SMALL))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    net.eval()
    x = torch.randn(2, 3, 5, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net._cnn(x), net.cnn(x), rtol=1e-5, atol=1e-5)


def test_inference_path_equals_the_plain_forward_and_is_deterministic():
    """Eval-mode inference (batch norm folded, channels-last Conv3d on the CPU, pointwise
    products in place) against the plain module sequence with autograd on: within 1e-5
    relative (the preset sizes); two inference runs give the same bytes."""
    torch.manual_seed(1)
    net = MPFM(MPFMConfig.variant("mpfm", 8)).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 7, 8, 2 * net.radius + 9, 2 * net.radius + 11)
    with torch.inference_mode():
        got, again = net(x), net(x)
    plain = MPFM(net.cfg).eval()
    plain.load_state_dict(net.state_dict())
    plain._cnn = plain.cnn  # the unfolded Conv3d -> BatchNorm3d -> ReLU sequence
    with torch.enable_grad():
        ref = plain(x).detach()
    assert got.shape == ref.shape == (3, 9, 11)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(got, again)


def test_quality_flags_follow_the_raw_sources_and_the_mask():
    days = pd.date_range("2020-01-01", periods=6)
    field = _field(n_days=6)
    field[2, 1, 4:6, 4:6] = np.nan  # source b missing on day 2 in a 2 x 2 corner
    model = _model()
    mask = np.ones(field.shape[-2:], bool)
    mask[0, 0] = False
    blocks = list(
        predict_grid(
            model, _reader(field, days), days, tile=8, time_block=4, mask=mask,
            flag_sources=["a", "b"],
        )
    )  # fmt: skip
    assert all(len(b) == 3 for b in blocks)
    flags = np.concatenate([b[2] for b in blocks])
    assert flags.shape == (6, *field.shape[-2:])
    valid = quality.decode(flags, ["a_valid", "b_valid"])
    assert not valid["b"][2, 4:6, 4:6].any() and valid["a"][2, 4:6, 4:6].all()
    assert valid["b"][[0, 1, 3, 4, 5]][:, mask].all()
    assert (flags[:, 0, 0] == 0).all()  # outside the mask: nothing entered
    with pytest.raises(ValueError, match="not among the channels"):
        list(predict_grid(model, _reader(field, days), days, flag_sources=["c"]))
