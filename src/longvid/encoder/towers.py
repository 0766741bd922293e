"""A VideoViT started from a pretrained image tower (the recipe of A Simple Recipe for
Contrastively Pre-training Video-First Encoders Beyond 16 Frames, arXiv 2312.07395, starts
from an image-text model): a transformers SigLIP vision tower mapped weight for weight onto
VideoViT. The patch embedding becomes the 2-D path and, inflated, the tubelets; the position
embeddings the spatial grid (temporal ones start at zero); the blocks, final norm and SigLIP's
attention-pooling head carry over. One frame then encodes exactly as the image tower does
(tests/test_encoder.py); from SigLIP, so does a still video with central inflation (attention
over T copies of each token is attention over one). CLIP's class token attends to every copy of
each patch, so there a still video's pooled output differs from the image's. A full CLIP or
SigLIP checkpoint's text tower comes from the same folder through the encoder's ``text`` key
(``encoder/text.py``: pooled as that model pools).

Supported: SigLIP and CLIP vision towers (``SiglipVisionModel`` / ``CLIPVisionModel``
folders, or full checkpoints' vision parts). CLIP's class token (one per clip, never masked)
and its pre-norm come along, and it pools by that token: the joint backbone only. The text
tower of a full checkpoint is not taken from it (the encoder's ``text`` stays its own).
"""

from __future__ import annotations

from pathlib import Path

import torch

from longvid.encoder.model import VideoViT, VideoViTConfig
from longvid.errors import InvalidRequestError, ModelLoadError

ACT_OF = {"gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "quick_gelu": "quick_gelu"}


def _vision_model(tower):
    """(kind, the vision transformer: embeddings, encoder, post_layernorm[, head]) of a
    SigLIP or CLIP tower, loaded from a folder or hub id when given one."""
    if isinstance(tower, str | Path):
        from transformers import AutoConfig, CLIPVisionModel, SiglipVisionModel

        try:
            kind = AutoConfig.from_pretrained(tower).model_type
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{tower}: cannot read an image tower ({str(e).splitlines()[0]})") from None
        classes = {"siglip": SiglipVisionModel, "siglip_vision_model": SiglipVisionModel,
                   "clip": CLIPVisionModel, "clip_vision_model": CLIPVisionModel}  # fmt: skip
        if kind not in classes:
            raise InvalidRequestError(f"{tower}: a {kind} model; image towers supported: SigLIP, CLIP")
        tower = classes[kind].from_pretrained(tower, use_kernels=False)
    inner = getattr(tower, "vision_model", tower)
    if not hasattr(inner, "post_layernorm") or not hasattr(inner, "embeddings"):
        raise InvalidRequestError(f"not a SigLIP or CLIP vision tower: {type(tower).__name__}")
    kind = "clip" if hasattr(inner.embeddings, "class_embedding") else "siglip"
    return kind, inner


def video_config_of(vision_config, kind: str, frames: int = 16, backbone: str = "joint", embed_dim: int | None = None):
    """The VideoViT geometry of a SigLIP or CLIP vision config."""
    c = vision_config
    if c.hidden_act not in ACT_OF:
        raise InvalidRequestError(f"unsupported activation {c.hidden_act!r} in the image tower")
    if kind == "clip" and backbone != "joint":
        raise InvalidRequestError("a CLIP tower's class token needs the joint backbone")
    if kind == "clip":
        head = dict(cls_token=True, pre_norm=True, head_pool="cls")
    else:
        head = dict(head_pool="map" if getattr(c, "vision_use_head", True) and backbone != "frame" else "mean")
    return VideoViTConfig(
        image_size=c.image_size,
        patch=c.patch_size,
        frames=frames,
        width=c.hidden_size,
        depth=c.num_hidden_layers,
        heads=c.num_attention_heads,
        mlp_ratio=c.intermediate_size / c.hidden_size,
        embed_dim=embed_dim or c.hidden_size,
        backbone=backbone,
        act=ACT_OF[c.hidden_act],
        ln_eps=c.layer_norm_eps,
        **head,
    )


@torch.no_grad()
def from_image_tower(
    tower, frames: int = 16, inflate: str = "central", backbone: str = "joint", embed_dim: int | None = None
) -> VideoViT:
    """A VideoViT with a SigLIP or CLIP image tower's weights (a folder, or a loaded model)."""
    kind, vision = _vision_model(tower)
    model = VideoViT(video_config_of(vision.config, kind, frames, backbone, embed_dim))
    emb = vision.embeddings
    model.patch.weight.copy_(emb.patch_embedding.weight)
    bias = emb.patch_embedding.bias  # CLIP's patch embedding has none
    model.patch.bias.copy_(bias if bias is not None else torch.zeros_like(model.patch.bias))
    positions = emb.position_embedding.weight
    if kind == "clip":  # row 0 is the class token's
        model.cls.copy_(emb.class_embedding)
        model.pos_cls.copy_(positions[0])
        positions = positions[1:]
        model.pre_norm.load_state_dict(vision.pre_layrnorm.state_dict())
    model.pos_spatial.copy_(positions)
    if model.pos_temporal is not None:
        model.pos_temporal.zero_()  # still video = the image: time is learned from here
    for ours, theirs in zip(model.blocks, vision.encoder.layers, strict=True):
        att = theirs.self_attn
        ours.norm1.load_state_dict(theirs.layer_norm1.state_dict())
        ours.norm2.load_state_dict(theirs.layer_norm2.state_dict())
        ours.qkv.weight.copy_(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]))
        ours.qkv.bias.copy_(torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias]))
        ours.proj.load_state_dict(att.out_proj.state_dict())
        ours.mlp[0].load_state_dict(theirs.mlp.fc1.state_dict())
        ours.mlp[2].load_state_dict(theirs.mlp.fc2.state_dict())
    model.norm.load_state_dict(vision.post_layernorm.state_dict())
    if model.config.head_pool == "map":
        head = vision.head
        model.map_head.probe.copy_(head.probe)
        model.map_head.attention.load_state_dict(head.attention.state_dict())
        model.map_head.norm.load_state_dict(head.layernorm.state_dict())
        model.map_head.mlp[0].load_state_dict(head.mlp.fc1.state_dict())
        model.map_head.mlp[2].load_state_dict(head.mlp.fc2.state_dict())
    model.inflate(inflate)
    return model
