"""The key prefixes name real parts of VREMD, and the file names are the hub mixin's."""

from huggingface_hub import constants

from tests.vremd_models.vitpose_checkpoints import vremd_config
from vremd_models import VREMD
from vremd_models.weights import BACKBONE_PREFIX, CONFIG_FILE, HEAD_PREFIX, POS_EMBED, WEIGHTS_FILE


def test_prefixes_cover_the_backbone_and_the_heatmap_convolution():
    model = VREMD(vremd_config(use_hkme=False, use_bmd=False))
    keys = set(model.state_dict())
    assert POS_EMBED in keys
    assert {k.removeprefix(BACKBONE_PREFIX) for k in keys if k.startswith(BACKBONE_PREFIX)} == set(
        model.backbone.vit.state_dict()
    )
    assert {k for k in keys if k.startswith(HEAD_PREFIX)} == {HEAD_PREFIX + "weight", HEAD_PREFIX + "bias"}


def test_file_names_are_what_save_pretrained_writes(tmp_path):
    assert (CONFIG_FILE, WEIGHTS_FILE) == (constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE)
    VREMD(vremd_config()).save_pretrained(tmp_path)
    assert {CONFIG_FILE, WEIGHTS_FILE} <= {p.name for p in tmp_path.iterdir()}
