"""Weight files, in one place: reading them defensively, finding them, converting ViTPose layouts, loading them.

- :mod:`.names`: the file names of a model folder, the pickle suffixes, VREMD's backbone and head key prefixes.
- :mod:`.reading`: the one safetensors reader (header, byte ranges, dtype and shape checked before reading) and
  the one JSON / ``config.json`` reader.
- :mod:`.hub`: a local file or folder, or a hub id through the HF cache; pickle-only model folders refused.
- :mod:`.report`: the one strict key and shape report (``KeyReport``, ``CheckpointMismatchError``).
- :mod:`.budget`: a model compared with a weights file's header on the ``meta`` device, before it is allocated.
- :mod:`.pos_embed`: the one position-embedding resize.
- :mod:`.layouts`: ViTPose's mmpose, mmpose 1.x and transformers key layouts renamed to VREMD's.
- :mod:`.vitpose_source`: ViTPose files, folders, shards and hub ids, and the backbone they describe.
- :mod:`.initialise`: a VREMD's backbone or H_m decoder filled from a checkpoint.
- :mod:`.convert`: a VREMD built from a ViTPose source. Not imported here: it imports ``modeling``, which imports
  this package's readers.
"""

from vremd_models.weights.budget import skeleton_report
from vremd_models.weights.hub import hub_id_of, resolve_file, resolve_source
from vremd_models.weights.initialise import InitialisationError, init_backbone, init_head, load_vitpose_into
from vremd_models.weights.layouts import ConvertedCheckpoint, Layout, convert_vitpose_state_dict, detect_layout
from vremd_models.weights.names import (
    BACKBONE_PREFIX,
    CONFIG_FILE,
    HEAD_PREFIX,
    PICKLE_SUFFIXES,
    POS_EMBED,
    SHARD_INDEX,
    WEIGHTS_FILE,
)
from vremd_models.weights.pos_embed import resize_pos_embed
from vremd_models.weights.reading import read_json_object, read_safetensors, read_vremd_config, safetensors_skeleton
from vremd_models.weights.report import CheckpointMismatchError, KeyReport, compare_keys
from vremd_models.weights.vitpose_source import (
    BackboneShape,
    VitPoseSource,
    backbone_shape,
    load_vitpose_checkpoint,
    read_vitpose_source,
    vremd_config_for,
)

__all__ = [
    "BACKBONE_PREFIX",
    "CONFIG_FILE",
    "HEAD_PREFIX",
    "PICKLE_SUFFIXES",
    "POS_EMBED",
    "SHARD_INDEX",
    "WEIGHTS_FILE",
    "BackboneShape",
    "CheckpointMismatchError",
    "ConvertedCheckpoint",
    "InitialisationError",
    "KeyReport",
    "Layout",
    "VitPoseSource",
    "backbone_shape",
    "compare_keys",
    "convert_vitpose_state_dict",
    "detect_layout",
    "hub_id_of",
    "init_backbone",
    "init_head",
    "load_vitpose_checkpoint",
    "load_vitpose_into",
    "read_json_object",
    "read_safetensors",
    "read_vitpose_source",
    "read_vremd_config",
    "resize_pos_embed",
    "resolve_file",
    "resolve_source",
    "safetensors_skeleton",
    "skeleton_report",
    "vremd_config_for",
]
