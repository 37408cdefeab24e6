"""A tiny random-weight RT-DETR saved with transformers: the person detector of the predict and demo tests.

"person" is label 1 of 3 (not 0, as COCO's is, so a hard-coded id would be caught), and the class head is
biased so that most of the top queries are persons and a few are cars; the box head makes the boxes wide
and tall, so some reach past the frame. Offline: built from a config, nothing downloaded.
"""

from pathlib import Path

LABELS = {0: "bicycle", 1: "person", 2: "car"}
PERSON = 1


def save_tiny_detector(folder: Path, *, labels: dict[int, str] = LABELS) -> Path:
    import torch
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor, RTDetrResNetConfig

    torch.manual_seed(0)
    backbone = RTDetrResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )  # fmt: skip
    config = RTDetrConfig(
        backbone_config=backbone, encoder_in_channels=[16, 16, 16], encoder_hidden_dim=16, encoder_ffn_dim=32,
        encoder_attention_heads=2, d_model=16, decoder_in_channels=[16, 16, 16], decoder_ffn_dim=32,
        decoder_layers=1, decoder_attention_heads=2, num_queries=6, num_denoising=0,
        id2label=labels, label2id={name: i for i, name in labels.items()},
    )  # fmt: skip
    model = RTDetrForObjectDetection(config).eval()
    with torch.no_grad():
        for head in model.model.decoder.class_embed:
            head.weight.normal_(0, 150.0)  # the decoder's output is ~0.01 at this size
            head.bias.copy_(torch.tensor([-2.0, 2.0, 1.2]))
        for head in model.model.decoder.bbox_embed:  # (cx, cy, w, h) logits: wide, tall boxes
            head.layers[-1].weight.normal_(0, 0.5)
            head.layers[-1].bias.copy_(torch.tensor([0.0, 0.0, 2.0, 2.5]))
    model.save_pretrained(folder)
    RTDetrImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return Path(folder)
