import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.vremd_models.hub_cache import cached_snapshot
from vremd_models import PRESETS, VREMD, CheckpointMismatchError, VREMDConfig, heatmap_loss
from vremd_models.config import HeadLosses

# Tiny sizes: 64x48 input (a 4x3 token grid), 16x12 heatmaps, one block everywhere.
TINY = {
    "image_size": (64, 48),
    "heatmap_size": (16, 12),
    "backbone_dim": 32,
    "backbone_depth": 1,
    "backbone_num_heads": 2,
    "hidden_dim": 16,
    "num_heads": 2,
    "hkme_human_blocks": 1,
    "hkme_keypoint_blocks": 1,
    "hkme_spatial_blocks": 1,
    "hkme_temporal_blocks": 1,
    "bmd_num_blocks": 1,
    "keypoint_head_hidden_dim": 16,
}

ABLATIONS = {
    "full": {},
    "baseline (Table 4)": {"use_hkme": False, "use_bmd": False},
    "hkme only (Table 4 a)": {"use_bmd": False},
    "bmd only (Table 4 b)": {"use_hkme": False},
    "no masks (Table 5 a)": {"human_mask": False, "keypoint_mask": False},
    "human mask only (Table 5 b)": {"keypoint_mask": False},
    "keypoint mask only (Table 5 c)": {"human_mask": False},
    "no masks, no keypoint tokens (Table 5 a, variant)": {"human_mask": False, "keypoint_tokens": False},
    "human mask only, no keypoint tokens (Table 5 b, variant)": {"keypoint_tokens": False},
    "dc block (Table 6 a)": {"bmd_block": "deformable_conv", "bidirectional": False},
    "dc block bidirectional": {"bmd_block": "deformable_conv"},
    "dc block, shared direction weights": {"bmd_block": "deformable_conv", "bmd_share_direction_weights": True},
    "dc in the ADC block (Table 6 a, variant)": {"motion_op": "dc", "bidirectional": False},
    "da (Table 6 b)": {"motion_op": "da", "bidirectional": False},
    "dca joint (Table 6 c)": {"motion_op": "dca", "bidirectional": False},
    "dc bidirectional": {"motion_op": "dc"},
    "da bidirectional": {"motion_op": "da"},
    "shared direction weights": {"bmd_share_direction_weights": True},
    "sigmoid human mask": {"human_mask_activation": "sigmoid"},
    "frozen backbone": {"freeze_backbone": True},
    "drop path": {"drop_path": 0.2, "backbone_drop_path": 0.2},
    "learned H_k gate": {"keypoint_gate": True},
    "learned H_k gate, loss on H_m": {"keypoint_gate": True, "head_losses": "motion"},
}


def tiny_config(**overrides) -> VREMDConfig:
    return VREMDConfig.from_preset("vremd-tiny", **{**TINY, **overrides})


def _inputs(cfg: VREMDConfig, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, cfg.num_frames, 3, *cfg.image_size, generator=gen)
    targets = torch.rand(batch, cfg.num_joints, *cfg.heatmap_size, generator=gen)
    weight = (torch.rand(batch, cfg.num_joints, generator=gen) > 0.3).float()
    return pixels, targets, weight


@pytest.mark.parametrize("overrides", list(ABLATIONS.values()), ids=list(ABLATIONS))
def test_every_ablation_runs_forward_and_backward(overrides):
    torch.manual_seed(0)
    cfg = tiny_config(**overrides)
    model = VREMD(cfg).train()
    pixels, targets, weight = _inputs(cfg)
    out = model(pixels, targets, weight)
    assert out.heatmaps.shape == (2, 17, 16, 12)
    assert torch.isfinite(out.heatmaps).all()
    assert torch.isfinite(out.loss)
    out.loss.backward()
    # Every trainable parameter is on the loss's graph: no dead module (DDP would fail on one).
    no_grad = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_forward_and_backward_at_tiny_sizes(name):
    torch.manual_seed(0)
    cfg = VREMDConfig.from_preset(name, **TINY)
    model = VREMD(cfg).train()
    pixels, targets, weight = _inputs(cfg, batch=1)
    out = model(pixels, targets, weight)
    out.loss.backward()
    assert out.heatmaps.shape == (1, 17, 16, 12)
    assert model.backbone.frozen == PRESETS[name].freeze_backbone


@pytest.mark.slow
def test_vitb_preset_builds_at_full_size():
    torch.manual_seed(0)
    model = VREMD(PRESETS["vremd-vitb"]).eval()
    backbone = sum(p.numel() for p in model.backbone.parameters())
    # patch conv 590,592 + 192 positions x 768 + 12 blocks x 7,087,872 + final norm 1,536 (no class token)
    assert backbone == 85_794_048
    with torch.no_grad():
        out = model(torch.randn(1, 3, 3, 256, 192))
    assert out.heatmaps.shape == (1, 17, 64, 48)


def test_frozen_backbone_gets_no_gradients_and_the_rest_does():
    torch.manual_seed(0)
    # The paper's H = H_k + H_m (a gated setting would hold H_k back at the start); with H_m's zero-initialised
    # motion projection the features behind it only receive gradients after the first steps.
    cfg = tiny_config(freeze_backbone=True, keypoint_gate=False)
    model = VREMD(cfg).train()
    pixels, targets, weight = _inputs(cfg)
    model(pixels, targets, weight).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    assert model.feature_proj.weight.grad.abs().sum() > 0
    assert model.motion_head.conv.weight.grad.abs().sum() > 0
    assert not model.backbone.training
    assert model.hkme.training


def test_masks_and_sampling_locations_on_request():
    torch.manual_seed(0)
    cfg = tiny_config(human_mask_activation="sigmoid")
    model = VREMD(cfg).eval()
    pixels, _, _ = _inputs(cfg)
    plain = model(pixels)
    assert plain.loss is None
    assert plain.human_mask is None
    assert plain.keypoint_mask is None
    assert plain.sampling_locations is None
    out = model(pixels, output_masks=True, output_sampling_locations=True)
    N = cfg.grid_size[0] * cfg.grid_size[1]
    assert out.human_mask.shape == (2, 3, N)
    assert ((out.human_mask > 0) & (out.human_mask < 1)).all()  # sigmoid
    assert out.keypoint_mask.shape == (2, 3, N)
    # Softmax over the T*N tokens, summed over the T*J keypoint tokens.
    torch.testing.assert_close(out.keypoint_mask.sum(dim=(1, 2)), torch.full((2,), 3.0 * 17))
    assert out.sampling_locations.shape == (2, cfg.bmd_num_blocks, 2, N, cfg.num_heads, cfg.bmd_num_points, 2)
    torch.testing.assert_close(out.heatmaps, plain.heatmaps)


def test_disabled_masks_are_not_returned():
    torch.manual_seed(0)
    cfg = tiny_config(human_mask=False, use_bmd=False)
    out = VREMD(cfg).eval()(_inputs(cfg)[0], output_masks=True, output_sampling_locations=True)
    assert out.human_mask is None
    assert out.keypoint_mask is not None
    assert out.sampling_locations is None


def test_joint_stream_has_one_stream_of_sampling_locations():
    torch.manual_seed(0)
    cfg = tiny_config(bidirectional=False)
    out = VREMD(cfg).eval()(_inputs(cfg)[0], output_sampling_locations=True)
    assert out.sampling_locations.shape[2] == 1


def test_baseline_sees_only_the_key_frame_and_the_full_model_all_frames():
    torch.manual_seed(0)
    cfg = tiny_config(use_hkme=False, use_bmd=False)
    pixels, _, _ = _inputs(cfg)
    changed = pixels.clone()
    changed[:, [0, 2]] = torch.randn_like(changed[:, [0, 2]])
    baseline = VREMD(cfg).eval()
    torch.testing.assert_close(baseline(pixels).heatmaps, baseline(changed).heatmaps)
    assert baseline.hkme is None
    assert baseline.bmd is None
    assert baseline.keypoint_head is None
    full = VREMD(tiny_config(keypoint_gate=False)).eval()  # a learned gate would hide H_k at initialisation
    assert not torch.allclose(full(pixels).heatmaps, full(changed).heatmaps)


def test_loss_is_target_weighted_mse():
    torch.manual_seed(0)
    cfg = tiny_config(keypoint_gate=False, head_losses="none")  # the paper: one loss on H (others: test_initialise.py)
    model = VREMD(cfg).eval()
    pixels, targets, weight = _inputs(cfg)
    out = model(pixels, targets, weight)
    w = weight[:, :, None, None]
    torch.testing.assert_close(out.loss, ((out.heatmaps * w - targets * w) ** 2).mean())
    torch.testing.assert_close(model(pixels, targets).loss, ((out.heatmaps - targets) ** 2).mean())


def test_heatmap_loss_ignores_zero_weight_joints():
    heatmaps, targets = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    targets[0, 1] = 5.0  # a huge error on an unlabelled joint
    assert heatmap_loss(heatmaps, targets, torch.tensor([[1.0, 0.0]])) == 0
    assert heatmap_loss(heatmaps, targets, torch.tensor([[1.0, 1.0]])) == pytest.approx(12.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.zeros(1, 3, 3, 64, 64),), r"pixel_values must be \(B, 3, 3, 64, 48\)"),
        ((torch.zeros(1, 2, 3, 64, 48),), r"pixel_values must be \(B, 3, 3, 64, 48\)"),
        ((torch.zeros(1, 3, 3, 64, 48), torch.zeros(1, 17, 64, 48)), r"target_heatmaps must be \(1, 17, 16, 12\)"),
        ((torch.zeros(1, 3, 3, 64, 48), torch.zeros(1, 17, 16, 12), torch.zeros(1, 17, 1)), "target_weight must be"),
        ((torch.zeros(1, 3, 3, 64, 48), None, torch.zeros(1, 17)), "without target_heatmaps"),
    ],
)
def test_forward_rejects_wrong_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        VREMD(tiny_config())(*args)


def test_constructor_needs_a_config_object():
    with pytest.raises(TypeError, match="config must be a VREMDConfig, got dict"):
        VREMD({"hidden_dim": 16})  # type: ignore[arg-type]  -- the wrong type is the point


# ---------------------------------------------------------------------- hub round trip


@pytest.mark.gpu
def test_bf16_autocast_forward_and_backward_on_gpu():
    torch.manual_seed(0)
    cfg = tiny_config(freeze_backbone=True)
    model = VREMD(cfg).to("cuda").train()
    pixels, targets, weight = (t.to("cuda") for t in _inputs(cfg))
    expected = model(pixels, targets, weight)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(pixels, targets, weight)
    assert out.heatmaps.dtype == torch.bfloat16
    out.loss.backward()
    assert torch.isfinite(out.loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    torch.testing.assert_close(out.heatmaps.float(), expected.heatmaps, atol=5e-2, rtol=5e-2)


def test_save_pretrained_then_from_pretrained_is_identical(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = VREMD(cfg).eval()
    model.save_pretrained(tmp_path, model_card_kwargs={"metrics": {"mAP (PT17 val)": 87.6}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert VREMDConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg

    loaded = VREMD.from_pretrained(tmp_path)
    assert loaded.config == cfg
    assert not loaded.training
    state, restored = model.state_dict(), loaded.state_dict()
    assert state.keys() == restored.keys()
    assert all(torch.equal(state[k], restored[k]) for k in state)
    pixels, _, _ = _inputs(cfg)
    assert torch.equal(model(pixels).heatmaps, loaded(pixels).heatmaps)


def test_a_folder_with_only_pickle_weights_is_refused(tmp_path):
    model = VREMD(tiny_config())
    (tmp_path / "config.json").write_text(model.config.to_json_string())
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(
        FileNotFoundError, match=r"no model\.safetensors \(found pickle file\(s\) \['pytorch_model\.bin'\]\)"
    ):
        VREMD.from_pretrained(tmp_path)


def test_pickle_beside_safetensors_is_never_read(tmp_path):
    model = VREMD(tiny_config())
    model.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a pickle: loading it would fail")
    assert isinstance(VREMD.from_pretrained(tmp_path), VREMD)


def test_unknown_config_field_is_an_error_not_a_silent_drop(tmp_path):
    model = VREMD(tiny_config())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["use_hkme_v2"] = True
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: use_hkme_v2: unknown key"):
        VREMD.from_pretrained(tmp_path)


def test_missing_and_unexpected_weights_are_listed(tmp_path):
    model = VREMD(tiny_config())
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["motion_head.conv.bias"]
    weights["extra.weight"] = torch.zeros(1)
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointMismatchError, match=r"missing key\(s\): motion_head\.conv\.bias") as info:
        VREMD.from_pretrained(tmp_path)
    assert info.value.report.unexpected == ["extra.weight"]


def test_missing_config_is_reported(tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        VREMD.from_pretrained(tmp_path)


def test_unexpected_from_pretrained_kwargs_are_an_error(tmp_path):
    VREMD(tiny_config()).save_pretrained(tmp_path)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['hidden_dim'\]"):
        VREMD.from_pretrained(tmp_path, hidden_dim=32)


def test_config_fixture_from_version_0_1_still_loads():
    # Guards silent field drops and renames: this file was written by vremd-models 0.1.0, whose default human
    # mask was the sigmoid one (the file says so; the default is now eq. 1's, without activation).
    fixture = Path(__file__).parent / "data" / "config-0.1.0.json"
    cfg = VREMDConfig.from_dict(json.loads(fixture.read_text()))
    assert cfg == VREMDConfig.from_preset("vremd-tiny", human_mask_activation="sigmoid")


@pytest.mark.slow
def test_from_pretrained_resolves_a_hub_id_from_a_prefilled_cache_offline(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = VREMD(cfg).eval()
    model.save_pretrained(cached_snapshot(tmp_path / "hf_home" / "hub", "org/vremd-tiny-test"))
    pixels, _, _ = _inputs(cfg)
    torch.save({"pixels": pixels, "heatmaps": model(pixels).heatmaps}, tmp_path / "expected.pt")

    # A fresh interpreter: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported.
    script = textwrap.dedent(
        f"""
        import torch
        from vremd_models import VREMD
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)  # noqa: TID251
        model = VREMD.from_pretrained("org/vremd-tiny-test")
        assert torch.equal(model(expected["pixels"]).heatmaps, expected["heatmaps"])
        print("ok")
        """
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---- the hub mixin's contract: every keyword, a passed config

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A pre-filled HF cache: org/vremd-test at two commits (main -> A) with different weights."""
    cache = tmp_path_factory.mktemp("hub")
    models = {}
    for seed, commit in enumerate((COMMIT_A, COMMIT_B)):
        torch.manual_seed(seed)
        models[commit] = VREMD(tiny_config()).eval()
        models[commit].save_pretrained(cached_snapshot(cache, "org/vremd-test", commit, main=commit == COMMIT_A))
    return cache, models


def _same_weights(a: VREMD, b: VREMD) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_mixin_keyword_reaches_the_cache(hub_cache):
    cache, models = hub_cache
    common = {"cache_dir": cache, "local_files_only": True, "token": False, "force_download": False}
    main = VREMD.from_pretrained("org/vremd-test", **common)
    assert _same_weights(main, models[COMMIT_A])
    pinned = VREMD.from_pretrained("org/vremd-test", revision=COMMIT_B, map_location=torch.device("cpu"), **common)
    assert _same_weights(pinned, models[COMMIT_B])
    assert not _same_weights(pinned, models[COMMIT_A])
    with pytest.raises(FileNotFoundError, match=r"[Cc]annot find|not.*cached|offline"):
        VREMD.from_pretrained("org/vremd-test", revision="c" * 40, **common)


def test_strict_false_loads_what_fits_and_warns(tmp_path, caplog):
    VREMD(tiny_config()).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["motion_head.conv.bias"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointMismatchError):
        VREMD.from_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vremd_models.modeling"):
        model = VREMD.from_pretrained(tmp_path, strict=False)
    assert "1 missing key(s): motion_head.conv.bias" in caplog.text
    assert torch.equal(model.motion_head.conv.weight, weights["motion_head.conv.weight"])


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_passed_config_overrides_config_json(tmp_path, as_dict):
    torch.manual_seed(0)
    saved = VREMD(tiny_config()).eval()
    saved.save_pretrained(tmp_path)
    override = dataclasses.replace(tiny_config(), drop_path=0.2, attention_backend="math", freeze_backbone=True)
    loaded = VREMD.from_pretrained(tmp_path, config=override.to_dict() if as_dict else override)
    assert loaded.config == override
    assert _same_weights(loaded, saved)
    loaded.save_pretrained(tmp_path / "again")  # the override is what a re-save records
    assert VREMDConfig.from_json_string((tmp_path / "again" / "config.json").read_text()) == override


def test_a_passed_config_needs_no_config_json_but_must_fit_the_weights(tmp_path):
    VREMD(tiny_config()).save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    assert VREMD.from_pretrained(tmp_path, config=tiny_config()).config == tiny_config()
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        VREMD.from_pretrained(tmp_path, config=dataclasses.replace(tiny_config(), backbone_dim=64))
    with pytest.raises(TypeError, match="config must be a VREMDConfig or a dict"):
        VREMD.from_pretrained(tmp_path, config=3)


# ---- H = H_m + H_k, its gate and its losses


@pytest.mark.parametrize("head_losses", typing.get_args(HeadLosses))  # every setting the config accepts
@pytest.mark.parametrize("keypoint_gate", [False, True])
def test_head_losses_gate_and_separate_head_outputs(keypoint_gate, head_losses):
    torch.manual_seed(0)
    model = VREMD(tiny_config(keypoint_gate=keypoint_gate, head_losses=head_losses)).train()
    clip, targets, weight = torch.randn(2, 3, 3, 64, 48), torch.rand(2, 17, 16, 12), torch.ones(2, 17)
    out = model(clip, targets, weight)
    h_m, h_k = out.motion_heatmaps, out.keypoint_heatmaps
    gate = model.keypoint_head_gate
    assert (gate is not None) == keypoint_gate
    torch.testing.assert_close(out.heatmaps, h_m + (h_k if gate is None else gate * h_k))
    terms = {"none": [out.heatmaps], "motion": [out.heatmaps, h_m], "both": [out.heatmaps, h_m, h_k]}[head_losses]
    torch.testing.assert_close(out.loss, sum(heatmap_loss(m, targets, weight) for m in terms))
    out.loss.backward()
    if gate is not None:  # the gate starts at 0 and still receives a gradient
        assert gate.item() == 0.0
        assert gate.grad.abs() > 0


def test_baseline_output_has_no_keypoint_head():
    out = VREMD(tiny_config(use_hkme=False, use_bmd=False)).eval()(torch.randn(1, 3, 3, 64, 48))
    assert out.keypoint_heatmaps is None
    assert out.motion_heatmaps is out.heatmaps
