"""A VREMD built from a ViTPose source: what ``vremd-convert-vitpose`` saves.

The one module of :mod:`vremd_models.weights` that builds a model, so the package's ``__init__`` does not import
it (``modeling`` imports the package's readers; this module imports ``modeling``).
"""

import os
from dataclasses import dataclass
from typing import Any

from vremd_models.config import VREMDConfig
from vremd_models.modeling import VREMD
from vremd_models.weights.hub import hub_id_of
from vremd_models.weights.initialise import load_vitpose_into
from vremd_models.weights.layouts import convert_vitpose_state_dict
from vremd_models.weights.report import KeyReport
from vremd_models.weights.vitpose_source import (
    BackboneShape,
    VitPoseSource,
    backbone_shape,
    read_vitpose_source,
    vremd_config_for,
)

__all__ = ["ConvertedModel", "convert_vitpose"]


@dataclass
class ConvertedModel:
    """A VREMD initialised from a ViTPose source, with what the conversion found.

    Attributes:
        model: The model (backbone and, on request, H_m's decoder from the source).
        report: The key report of the strict load.
        shape: The source's backbone.
        source: The source as read.
        include_head: Whether the source's head was loaded into H_m.
    """

    model: VREMD
    report: KeyReport
    shape: BackboneShape
    source: VitPoseSource
    include_head: bool

    def card_kwargs(self, base_model: str | None = None) -> dict[str, str]:
        """``save_pretrained(model_card_kwargs=...)`` for the converted weights: license, base model, origin."""
        base_model = base_model or hub_id_of(self.source.weights)
        size = f"ViTPose-{self.shape.variant[0].upper()}" if self.shape.variant else "a ViTPose backbone"
        origin = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else f"`{self.source.path.name}`"
        text = (
            f"Backbone{' and pose head' if self.include_head else ''} converted from {size} "
            f"({self.shape.layout} layout, {origin}) with `vremd-convert-vitpose`; VREMD's own modules are freshly "
            "initialised. The ViTPose weights are Apache-2.0 licensed."
        )
        return {"license": "apache-2.0", "source": text} | ({"base_model": base_model} if base_model else {})


def convert_vitpose(
    source: str | os.PathLike,
    *,
    preset: str = "vremd-vitl",
    config: VREMDConfig | None = None,
    num_heads: int | None = None,
    include_head: bool = False,
    source_grid: tuple[int, int] | None = None,
    **download_kwargs: Any,
) -> ConvertedModel:
    """Read a ViTPose file, folder or hub id and build the VREMD it initialises.

    Args:
        source: Checkpoint file, shard index, folder or hub id (see :func:`read_vitpose_source`).
        preset: Chooses VREMD's own modules; the backbone's dimensions come from the source.
        config: A requested config instead of ``preset``; its backbone must agree with the source.
        num_heads: The backbone's head count when neither ``config.json`` nor a published shape gives it.
        include_head: Also load the source's simple-decoder head into H_m.
        source_grid: The checkpoint's token grid when it is neither ``config.json``'s nor square.
        **download_kwargs: For a hub id: ``revision``, ``cache_dir``, ``local_files_only``, ``token``, ...

    Raises:
        FileNotFoundError, ValueError: unreadable source or disagreeing config (one line naming the field).
        CheckpointMismatchError: the converted tensors do not fit (see ``.report``).
    """
    vitpose = read_vitpose_source(source, **download_kwargs)
    shape = backbone_shape(vitpose, num_heads=num_heads)
    vremd_config = vremd_config_for(shape, preset=preset, config=config, include_head=include_head)
    if source_grid is None and shape.image_size is not None:
        source_grid = (shape.image_size[0] // shape.patch_size, shape.image_size[1] // shape.patch_size)
    try:
        converted = convert_vitpose_state_dict(
            vitpose.state_dict, grid_size=vremd_config.grid_size, include_head=include_head, source_grid=source_grid
        )
    except ValueError as err:
        raise ValueError(f"{vitpose.weights}: {err}") from err
    model = VREMD(vremd_config)
    report = load_vitpose_into(model, converted, include_head=include_head)
    return ConvertedModel(model=model, report=report, shape=shape, source=vitpose, include_head=include_head)
