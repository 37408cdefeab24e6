"""The model card ``save_pretrained`` writes: the template, its hub metadata (``model-index``) and its values."""

import contextlib
import re
from typing import Any, Final

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.hub_mixin import MixinInfo

from vremd_models.config import VREMDConfig

__all__ = ["MODEL_CARD_TEMPLATE", "PAPER_URL", "VITPOSE_URL", "model_card"]

PAPER_URL: Final = "https://arxiv.org/abs/2501.14439"
VITPOSE_URL: Final = "https://github.com/ViTAE-Transformer/ViTPose"

MODEL_CARD_TEMPLATE: Final = """---
{{ card_data }}
---

# VREMD{{ " " + name if name else "" }}

Video pose estimator VREMD (Visual Representation Enhancement and Motion Disentanglement): a ViT backbone
(ViTPose layout) on frames (t-1, t, t+1), the Human-Keypoint Mask Enhanced module (HKME), the Bidirectional
Motion Disentanglement module (BMD) and two heatmap heads, summed.

```python
from vremd_models import VREMD
model = VREMD.from_pretrained("{{ repo_id | default("<repo id or folder>", true) }}")
out = model(pixel_values)  # (B, {{ num_frames }}, 3, {{ image_size[0] }}, {{ image_size[1] }}) -> out.heatmaps
```
{% if source %}
## Initialisation

{{ source }}
{% endif %}
## Ablation flags

| flag | value |
|---|---|
{% for key, value in ablation.items() %}| `{{ key }}` | `{{ value }}` |
{% endfor %}
{% if metrics %}
## Metrics{% if dataset %} ({{ dataset.name }} {{ dataset.split }}){% endif %}

| metric | value |
|---|---|
{% for key, value in metrics.items() %}| {{ key }} | {{ value }} |
{% endfor %}{% endif %}
## Config

```json
{{ config_json }}```

- Paper: [{{ paper_url }}]({{ paper_url }})
{% if repo_url %}- Code: [{{ repo_url }}]({{ repo_url }})
{% endif %}{% if base_model or source %}- Backbone weights: ViTPose ([{{ vitpose_url }}]({{ vitpose_url }}), Apache-2.0)
{% endif %}"""

_ABLATION_FIELDS: Final = (
    "use_hkme", "human_mask", "keypoint_tokens", "keypoint_mask", "use_bmd", "bmd_block", "motion_op", "bidirectional",
    "bmd_share_direction_weights",
)  # fmt: skip


def model_card(config: VREMDConfig, info: MixinInfo, **kwargs: Any) -> ModelCard:
    """The card of a model with ``config``: YAML metadata the hub renders, the config, the ablation flags, metrics.

    Args:
        config: The model's config.
        info: The hub mixin's class-level card data and links (``VREMD._hub_mixin_info``).
        **kwargs: ``VREMD.generate_model_card``'s keywords (``metrics``, ``dataset``, ``base_model``,
            ``license``, ``source``, ``repo_url``, ``name``).

    Raises:
        ValueError: ``dataset`` lacks its ``name`` or ``type``.
    """
    metrics = kwargs.pop("metrics", None) or None
    dataset = kwargs.pop("dataset", None) or None
    card_data = ModelCardData(**info.model_card_data.to_dict())  # a copy: the class's is shared
    for field in ("base_model", "license"):
        value = kwargs.pop(field, None)
        if value:
            setattr(card_data, field, value)
    if metrics and dataset:
        card_data.model_name = kwargs.get("name") or "VREMD"
        card_data.eval_results = _eval_results(metrics, dataset)
    kwargs.setdefault("name", None)
    kwargs.setdefault("source", None)
    return ModelCard.from_template(
        card_data,
        template_str=info.model_card_template,
        repo_url=kwargs.pop("repo_url", None) or info.repo_url,
        paper_url=info.paper_url,
        vitpose_url=VITPOSE_URL,
        metrics=metrics,
        dataset=dataset,
        base_model=card_data.base_model,
        config_json=config.to_json_string(),
        ablation={name: getattr(config, name) for name in _ABLATION_FIELDS},
        num_frames=config.num_frames,
        image_size=config.image_size,
        **kwargs,
    )


def _eval_results(metrics: dict[str, Any], dataset: dict[str, str]) -> list[EvalResult]:
    """One ``model-index`` entry per metric (the hub's evaluation results), all on one dataset and split."""
    missing = sorted({"name", "type"} - set(dataset))
    if missing:
        raise ValueError(f"model card dataset needs {missing} (got {sorted(dataset)})")
    results = []
    for name, value in metrics.items():
        with contextlib.suppress(TypeError, ValueError):  # a non-numeric metric stays as written
            value = float(value)
        results.append(
            EvalResult(
                task_type="keypoint-detection",
                task_name="Video pose estimation",
                dataset_type=dataset["type"],
                dataset_name=dataset["name"],
                dataset_split=dataset.get("split"),
                metric_type=re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"),
                metric_name=name,
                metric_value=value,
            )
        )
    return results
