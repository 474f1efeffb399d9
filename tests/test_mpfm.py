"""MPFM network, ConvLSTM, standardization, training and the saved model bundle."""

import numpy as np
import pandas as pd
import pytest
import torch

from gridfuse.evaluate import day_set_keys, deep_predictions
from gridfuse.models.convlstm import BiConvLSTM, ConvLSTM, ConvLSTMCell
from gridfuse.models.mpfm import MPFM, MPFMConfig
from gridfuse.models.train import (
    FusionModel,
    Standardizer,
    TrainConfig,
    predict_stations,
    train_fusion,
)
from gridfuse.predict import predict_grid

SMALL = dict(conv_channels=[4, 4], attention_heads=2, hidden=[4], head_hidden=8, window=5)


def _net(variant="mpfm", channels=3, seed=0, **kw):
    torch.manual_seed(seed)
    return MPFM(MPFMConfig.variant(variant, channels, **{**SMALL, **kw})).eval()


def _synthetic(n_st=10, n_days=50, patch=15, seed=0):
    """Patches of a smooth rain field; source a is 1.5x too wet + noise, b is lagged."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(0.5, 6.0, (n_st, n_days, 1, 1)) * (rng.random((n_st, n_days, 1, 1)) < 0.5)
    truth = amount * np.exp(rng.normal(0, 0.2, (n_st, n_days, patch, patch)))
    a = 1.5 * truth + rng.normal(0, 0.5, truth.shape).clip(0)
    b = 0.6 * np.roll(truth, 1, axis=1) + 0.4 * truth
    elev = np.broadcast_to(rng.normal(3000, 300, (n_st, 1, patch, patch)), truth.shape)
    x = np.stack([a, b, elev], -1).astype("f4")
    y = truth[:, :, patch // 2, patch // 2].astype("f4")
    y[rng.random(y.shape) < 0.1] = np.nan
    return x, y, ["a", "b", "elevation"]


# ------------------------------------------------------------------ convlstm
def test_cell_one_conv_for_four_gates_and_state_in_out():
    cell = ConvLSTMCell(3, 5, kernel=3)
    assert cell.gates.out_channels == 20 and cell.gates.in_channels == 8
    x = torch.randn(2, 3, 9, 9)
    h, (h2, c) = cell(x)
    assert h.shape == (2, 5, 7, 7) and h2 is h and c.shape == h.shape
    # second step: x cropped to the state's size, output shrinks again
    h3, _ = cell(x, (h, c))
    assert h3.shape == (2, 5, 5, 5)


def test_stack_equals_manual_unrolling_and_reverse():
    torch.manual_seed(1)
    lstm = ConvLSTM(2, [3], kernel=3)
    x = torch.randn(1, 4, 2, 11, 11)
    state = None
    for t in range(3):
        h, state = lstm.cells[0](x[:, t], state)
    out, _ = lstm(x, steps=3)
    torch.testing.assert_close(out, h)
    state = None
    for t in (3, 2):
        h, state = lstm.cells[0](x[:, t], state)
    out, _ = lstm(x, steps=2, reverse=True)
    torch.testing.assert_close(out, h)


def test_biconvlstm_concatenates_both_directions():
    bi = BiConvLSTM(2, [3], kernel=3)
    out = bi(torch.randn(2, 5, 2, 13, 13))
    # forward runs 3 steps, backward 3 steps: both shrink by 6
    assert out.shape == (2, 6, 7, 7)


# ------------------------------------------------------------------ network
@pytest.mark.parametrize("variant", ["mpfm", "cnn3d", "biconvlstm"])
def test_tile_prediction_equals_patch_centre(variant):
    net = _net(variant)
    r = net.radius
    assert r > 0
    x = torch.randn(3, 5, 3, 24 + 2 * r, 20 + 2 * r)
    with torch.no_grad():
        tile = net(x)
        assert tile.shape == (3, 24, 20)
        for i, j in [(0, 0), (5, 11), (23, 19), (12, 0)]:
            patch = x[..., i : i + 2 * r + 1, j : j + 2 * r + 1]
            torch.testing.assert_close(net.predict_center(patch), tile[:, i, j], atol=1e-5, rtol=0)


def test_receptive_radius_is_tight():
    """Changing an input cell just outside the radius leaves the centre unchanged; inside, not."""
    net = _net()
    r = net.radius
    x = torch.randn(1, 5, 3, 2 * r + 3, 2 * r + 3)
    with torch.no_grad():
        base = net(x)[0, 1, 1]  # centre cell of the (3, 3) output
        y = x.clone()
        y[..., 0, :] += 5.0  # row at distance r + 1 from the centre
        assert torch.equal(net(y)[0, 1, 1], base)
        y = x.clone()
        y[..., 1, 1 + r] += 5.0  # row at distance r
        assert not torch.equal(net(y)[0, 1, 1], base)


def test_output_is_non_negative():
    net = _net()
    with torch.no_grad():
        for p in net.head[-1].parameters():
            p.fill_(-3.0)
        out = net(100 * torch.randn(4, 5, 3, 20, 20))
    assert out.min() >= 0


def test_attention_keeps_the_amplitude_of_its_input():
    # a channel-normalizing layer would map x and 3x to the same output; rain intensity must
    # survive the attention block (residual, no layer norm)
    att = _net().attention
    x = torch.rand(2, 4, 5, 3, 3) + 0.1
    with torch.no_grad():
        for p in att.out.parameters():
            p.zero_()
        assert torch.allclose(att(3 * x), 3 * att(x))


def test_skip_feeds_cnn_features_to_the_head():
    with_skip, without = _net(skip=True), _net(skip=False)
    assert with_skip.head[0].in_channels == without.head[0].in_channels + SMALL["conv_channels"][-1]
    assert with_skip.radius == without.radius
    # the deep baselines have nothing to skip over
    assert _net("cnn3d", skip=True).head[0].in_channels == SMALL["conv_channels"][-1]


def test_shape_errors_name_what_was_expected():
    net = _net()
    with pytest.raises(ValueError, match="5 days x 3 channels"):
        net(torch.zeros(1, 7, 3, 20, 20))
    with pytest.raises(ValueError, match="receptive field"):
        net.predict_center(torch.zeros(1, 5, 3, 5, 5))


# ------------------------------------------------------------------ standardization
def test_standardizer_log1p_zscore_nan_to_zero():
    x = np.array([[0.0, 10.0], [3.0, 20.0], [np.nan, 30.0]], "f4")
    s = Standardizer.fit(x, ["rain", "elev"], ["rain"])
    v = np.log1p([0.0, 3.0])
    assert s.mean[0] == pytest.approx(v.mean()) and s.std[0] == pytest.approx(v.std())
    assert s.mean[1] == pytest.approx(20.0)
    z = s.transform(x)
    assert z[2, 0] == 0.0 and z[0, 1] == pytest.approx(-10 / np.std([10, 20, 30]), rel=1e-6)


def test_standardization_fitted_on_training_stations_only_and_stored(tmp_path):
    x, y, ch = _synthetic()
    x[8:] *= 100.0  # stations outside the fit set are very different
    tc = TrainConfig(epochs=1, batch_size=32, seeds=[0], device="cpu")
    model, _ = train_fusion(
        x, y, ch, np.arange(6), np.arange(6, 8), sizes=SMALL, train=tc, log_channels=["a", "b"]
    )
    expect = Standardizer.fit(x[:6], ch, ["a", "b"])
    np.testing.assert_allclose(model.standardizer.mean, expect.mean, rtol=1e-6)
    np.testing.assert_allclose(model.standardizer.std, expect.std, rtol=1e-6)
    model.save(tmp_path / "m.pt")
    loaded = FusionModel.load(tmp_path / "m.pt")
    assert loaded.standardizer == model.standardizer
    side = (tmp_path / "m.json").read_text()
    assert '"mean"' in side and '"channels"' in side and "gridfuse_version" in side
    np.testing.assert_allclose(
        predict_stations(loaded, x[:2, :10], ch), predict_stations(model, x[:2, :10], ch), atol=1e-6
    )


# ------------------------------------------------------------------ training
def test_training_reduces_loss_and_error():
    x, y, ch = _synthetic(n_st=10, n_days=40)
    tc = TrainConfig(epochs=5, batch_size=32, lr=3e-3, seeds=[0], device="cpu", patience=5)
    model, curve = train_fusion(
        x, y, ch, np.arange(8), np.arange(8, 10), sizes=SMALL, train=tc, log_channels=["a", "b"]
    )
    assert curve["train_loss"].iloc[-1] < 0.7 * curve["train_loss"].iloc[0]
    assert list(curve.columns[:5]) == ["seed", "epoch", "train_loss", "val_rmse", "val_mae"]
    pred = predict_stations(model, x, ch)
    assert pred.shape == y.shape and np.all(pred >= 0)
    untrained = FusionModel([_net()], model.standardizer, name="mpfm")
    before = predict_stations(untrained, x, ch)
    ok = np.isfinite(y)
    rmse = np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))
    assert rmse < np.sqrt(np.mean((before[ok] - y[ok]) ** 2))
    assert rmse < np.std(y[ok])


def test_volume_calibration_matches_the_fit_stations_total(tmp_path):
    x, y, ch = _synthetic(n_st=8, n_days=30)
    fit = np.arange(6)
    runs = {}
    for calibrate in (False, True):
        tc = TrainConfig(epochs=2, batch_size=32, seeds=[0, 1], device="cpu", calibrate=calibrate)
        runs[calibrate], _ = train_fusion(
            x, y, ch, fit, np.arange(6, 8), sizes=SMALL, train=tc, log_channels=["a", "b"]
        )
    raw, cal = runs[False], runs[True]
    assert raw.volume == [1.0, 1.0] and len(cal.volume) == 2 and cal.volume != [1.0, 1.0]
    ok = np.isfinite(y[fit])
    for i in range(2):  # each network on its own reproduces the fit stations' total
        one = FusionModel([cal.nets[i]], cal.standardizer, name="mpfm", volume=[cal.volume[i]])
        pred = predict_stations(one, x[fit], ch)
        np.testing.assert_allclose(pred[ok].sum(), y[fit][ok].sum(), rtol=1e-4)
    cal.save(tmp_path / "m.pt")
    assert FusionModel.load(tmp_path / "m.pt").volume == cal.volume


def test_mixed_loss_adds_the_log_error_in_mm():
    from gridfuse.models.train import _loss

    model = FusionModel([], None, name="mpfm", target="linear", y_scale=2.0)
    pred, y = torch.tensor([0.5, 2.0, 0.0]), torch.tensor([1.0, 1.0, 0.25])  # target space
    y_log = torch.log1p(y * 2.0)
    lin = torch.mean((pred - y) ** 2)
    tc = TrainConfig(target="linear", log_weight=0.5)
    expected = lin + 0.5 * torch.mean((torch.log1p(pred * 2.0) - y_log) ** 2)
    assert torch.isclose(_loss(model, pred, y, y_log, tc), expected)
    assert torch.isclose(_loss(model, pred, y, y_log, TrainConfig(target="linear")), lin)
    with pytest.raises(ValueError, match="needs target 'linear'"):
        TrainConfig(target="log1p", log_weight=0.5)


def test_training_is_deterministic_with_a_seed():
    x, y, ch = _synthetic(n_st=6, n_days=30)
    tc = TrainConfig(epochs=2, batch_size=16, seeds=[3], device="cpu")
    runs = [
        train_fusion(
            x, y, ch, np.arange(4), np.arange(4, 6), sizes=SMALL, train=tc, log_channels=["a"]
        )
        for _ in range(2)
    ]
    for k, v in runs[0][0].nets[0].state_dict().items():
        assert torch.equal(v, runs[1][0].nets[0].state_dict()[k]), k
    pd.testing.assert_series_equal(runs[0][1]["train_loss"], runs[1][1]["train_loss"])
    # the run's seed offsets every member seed; unknown keys are left out
    cfg = TrainConfig.from_dict({"seeds": [0, 1], "epochs": 2, "predict_tile": 64}, seed=42)
    assert cfg.seeds == [42, 43] and cfg.epochs == 2
    assert TrainConfig.from_dict({"seeds": [0, 1]}).seeds == [0, 1]


def test_fit_and_validation_stations_must_be_disjoint():
    x, y, ch = _synthetic(n_st=4, n_days=10)
    with pytest.raises(ValueError, match="overlap"):
        train_fusion(x, y, ch, np.arange(3), np.arange(2, 4), sizes=SMALL)


# ------------------------------------------------------------------ availability sets
def _constant_model(value, channels):
    net = _net(channels=len(channels))
    with torch.no_grad():
        for p in net.head[-1].parameters():
            p.zero_()
        net.head[-1].bias.fill_(float(np.log(np.expm1(np.log1p(value)))))  # softplus^-1
    std = Standardizer(
        list(channels), [False] * len(channels), [0.0] * len(channels), [1.0] * len(channels)
    )
    return FusionModel([net], std, name="mpfm")


def test_each_year_uses_the_model_of_its_source_set():
    times = pd.date_range("1997-12-25", "1998-01-05")
    keys = day_set_keys(times, {1997: ["era5"], 1998: ["era5", "imerg"]})
    assert set(keys[:7]) == {"era5"} and set(keys[7:]) == {"era5-imerg"}
    models = {
        "era5": _constant_model(1.0, ["era5", "elevation"]),
        "era5-imerg": _constant_model(5.0, ["era5", "imerg", "elevation"]),
    }
    x = np.random.default_rng(0).random((2, len(times), 15, 15, 3)).astype("f4")
    pred = deep_predictions(x, ["era5", "imerg", "elevation"], keys, models, device="cpu")
    np.testing.assert_allclose(pred[:, :7], 1.0, rtol=1e-5)
    np.testing.assert_allclose(pred[:, 7:], 5.0, rtol=1e-5)
    with pytest.raises(ValueError, match="no trained model"):
        deep_predictions(x, ["era5", "imerg", "elevation"], keys, {"era5": models["era5"]})
    with pytest.raises(ValueError, match="years"):
        day_set_keys(times, {1998: ["era5"]})


# ------------------------------------------------------------------ gridded vs station patches
def test_gridded_prediction_equals_station_patches_at_grid_edges():
    """predict_grid over a whole grid == the model at NaN-padded station patches."""
    rng = np.random.default_rng(2)
    days = pd.date_range("2020-01-01", periods=9)
    nlat, nlon, ch = 17, 13, ["a", "b", "elevation"]
    field = rng.gamma(0.6, 3.0, (len(days), 3, nlat, nlon)).astype("f4")
    field[:, 2] = rng.normal(3000, 100, (nlat, nlon))
    field[2, 0, 4, 4] = np.nan
    std = Standardizer.fit(field.transpose(0, 2, 3, 1), ch, ["a", "b"])
    model = FusionModel([_net(seed=4), _net(seed=5)], std, name="mpfm")

    def read(span):
        pos = days.get_indexer(span)
        out = field[np.clip(pos, 0, len(days) - 1)].copy()
        out[pos < 0] = np.nan
        return out

    blocks = list(predict_grid(model, read, days, tile=6, time_block=4, device="cpu"))
    grid_pred = np.concatenate([b for _, b in blocks])
    # station patches, as in patches.nc: NaN outside the grid
    p = 15
    h = p // 2
    padded = np.pad(
        field.transpose(0, 2, 3, 1), ((0, 0), (h, h), (h, h), (0, 0)), constant_values=np.nan
    )
    cells = [(0, 0), (16, 12), (8, 6), (3, 12)]
    x = np.stack([padded[:, i : i + p, j : j + p] for i, j in cells])  # (st, time, p, p, C)
    st_pred = predict_stations(model, x, ch, device="cpu")
    for k, (i, j) in enumerate(cells):
        np.testing.assert_allclose(st_pred[k], grid_pred[:, i, j], atol=1e-5, rtol=0)
