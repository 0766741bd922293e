"""Video-to-text on a frozen video encoder and a frozen causal LM (seed 001, section 3.3; the
Flamingo recipe).

The encoder's tokens (b, steps, grid^2, width) are mean-pooled over time to ``time_slots``
steps, a Perceiver resampler turns them into ``latents`` vectors (64 by default) in the LM's
width, and gated cross-attention layers inserted before every ``every``-th LM layer let the
text attend to them: ``h + tanh(a) * xattn(h, latents)`` then ``h + tanh(b) * ff(h)``, gates
at 0, so before training the captioner *is* the frozen LM. Only the resampler and the gated
layers train, on the captioning loss (next-token cross-entropy on the caption).

Any transformers causal LM whose decoder layers sit in one ``nn.ModuleList`` of
``num_hidden_layers`` entries works (Qwen2, Llama, Mistral, GPT-2, ...).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from longvid.encoder.model import VideoViT
from longvid.errors import InvalidRequestError, ModelLoadError
from longvid.lr import warmup_cosine
from longvid.progress import bar


@dataclass
class CaptionerConfig:
    latents: int = 64
    every: int = 1  # a gated cross-attention layer before every k-th LM layer
    time_slots: int = 4  # encoder steps mean-pooled to this many
    resampler_layers: int = 2
    heads: int = 4
    max_new_tokens: int = 32


class CrossAttention(nn.Module):
    """Queries from ``x``, keys and values from ``context`` (no mask: every latent is visible)."""

    def __init__(self, width: int, context_width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise InvalidRequestError(f"width {width} is not a multiple of heads {heads}")
        self.heads = heads
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(context_width, 2 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


def feed_forward(width: int, mult: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, mult * width), nn.GELU(), nn.Linear(mult * width, width))


class PerceiverResampler(nn.Module):
    """A fixed number of learned latents that attend to the visual tokens (and to themselves),
    as in Flamingo: any number of tokens in, ``latents`` vectors out."""

    def __init__(self, in_width: int, width: int, latents: int, layers: int, heads: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_width, width)
        self.latents = nn.Parameter(torch.randn(latents, width) * 0.02)
        parts = lambda: [nn.LayerNorm(width), nn.LayerNorm(width), CrossAttention(width, width, heads),  # noqa: E731
                         feed_forward(width)]  # fmt: skip
        self.layers = nn.ModuleList(nn.ModuleList(parts()) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.proj(tokens)
        lat = self.latents[None].expand(x.shape[0], -1, -1)
        for norm_x, norm_lat, attn, ff in self.layers:
            q = norm_lat(lat)
            lat = lat + attn(q, torch.cat([norm_x(x), q], dim=1))
            lat = lat + ff(lat)
        return self.norm(lat)


class GatedCrossAttentionLayer(nn.Module):
    """Runs before a frozen LM layer: text attends to the visual latents through tanh gates at 0."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attn = CrossAttention(width, width, heads)
        self.ff = feed_forward(width)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        h = h + torch.tanh(self.attn_gate) * self.attn(self.norm(h), latents.to(h.dtype))
        return h + torch.tanh(self.ff_gate) * self.ff(h)


class _WithCrossAttention(nn.Module):
    """A frozen LM decoder layer with a gated cross-attention layer in front of it."""

    def __init__(self, layer: nn.Module, xattn: GatedCrossAttentionLayer, owner: VideoCaptioner) -> None:
        super().__init__()
        self.layer, self.xattn = layer, xattn
        self._owner = [owner]  # a list: not registered as a submodule (it owns us)

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        latents = self._owner[0].current_latents
        if latents is not None:
            hidden_states = self.xattn(hidden_states, latents)
        return self.layer(hidden_states, *args, **kwargs)


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The LM's list of decoder layers: the ModuleList with num_hidden_layers entries."""
    count = lm.config.get_text_config().num_hidden_layers
    for module in lm.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ModelLoadError(f"{type(lm).__name__}: no list of {count} decoder layers found")


class VideoCaptioner(nn.Module):
    def __init__(self, encoder: VideoViT, lm: nn.Module, tokenizer, config: CaptionerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or CaptionerConfig()
        self.encoder, self.lm, self.tokenizer = encoder, lm, tokenizer
        for p in [*encoder.parameters(), *lm.parameters()]:
            p.requires_grad_(False)
        width = lm.config.get_text_config().hidden_size
        self.resampler = PerceiverResampler(encoder.config.width, width, c.latents, c.resampler_layers, c.heads)
        layers = decoder_layers(lm)
        self.gated = nn.ModuleList()
        for i in range(0, len(layers), c.every):
            xattn = GatedCrossAttentionLayer(width, c.heads)
            self.gated.append(xattn)
            layers[i] = _WithCrossAttention(layers[i], xattn, self)
        self.current_latents: torch.Tensor | None = None
        self.train()

    def train(self, mode: bool = True) -> VideoCaptioner:
        super().train(mode)
        self.encoder.eval()  # frozen towers never run in training mode (no dropout)
        self.lm.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [*self.resampler.parameters(), *self.gated.parameters()]

    def visual_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b, latents, lm width) from (b, frames, 3, H, W) pixels in [-1, 1]."""
        with torch.no_grad():
            tokens, steps = self.encoder.patch_tokens(pixels)
        b, n, d = tokens.shape
        tokens = tokens.view(b, steps, n // steps, d)
        slots = min(self.config.time_slots, steps)
        pooled = F.adaptive_avg_pool1d(tokens.permute(0, 2, 3, 1).reshape(b, -1, steps), slots)  # mean over time
        pooled = pooled.view(b, n // steps, d, slots).permute(0, 3, 1, 2).reshape(b, -1, d)
        return self.resampler(pooled)

    def caption_batch(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Input ids [bos?] caption eos, padded; labels are the caption and eos (padding -100)."""
        tok = self.tokenizer
        eos = tok.eos_token_id
        start = [tok.bos_token_id] if tok.bos_token_id is not None else [eos]
        rows = [start + tok(c, add_special_tokens=False)["input_ids"] + [eos] for c in captions]
        width = max(map(len, rows))
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos
        ids = torch.full((len(rows), width), pad)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            labels[i, 1 : len(row)] = torch.tensor(row[1:])
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def forward(self, pixels: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """Captioning loss: next-token cross-entropy on the caption."""
        device = self.resampler.latents.device
        self.current_latents = self.visual_latents(pixels.to(device))
        try:
            batch = {k: v.to(device) for k, v in self.caption_batch(captions).items()}
            return self.lm(**batch).loss
        finally:
            self.current_latents = None

    @torch.no_grad()
    def generate(self, pixels: torch.Tensor, max_new_tokens: int | None = None) -> list[str]:
        """Greedy captions for (b, frames, 3, H, W) pixels."""
        device = self.resampler.latents.device
        tok = self.tokenizer
        self.current_latents = self.visual_latents(pixels.to(device))
        try:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            ids = torch.full((pixels.shape[0], 1), start, device=device)
            out = self.lm.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                do_sample=False,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        finally:
            self.current_latents = None
        return [tok.decode(row[1:], skip_special_tokens=True).strip() for row in out]

    # ------------------------------------------------------------------ save / load

    def save(self, folder: str | Path, encoder_checkpoint: str, lm_path: str, frames: int) -> Path:
        """The trainable part + where the frozen towers come from (they are not copied)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.state_dict().items() if k.startswith(("resampler.", "gated."))}
        tmp = folder / "captioner.safetensors.tmp"
        save_file(state, tmp)
        tmp.replace(folder / "captioner.safetensors")
        meta = {"config": asdict(self.config), "encoder": str(encoder_checkpoint), "lm": str(lm_path), "frames": frames}
        (folder / "captioner.json").write_text(json.dumps(meta, indent=1))
        return folder


def load_lm(path: str | Path):
    """A causal LM and its tokenizer. A tokenizer saved as a plain ``tokenizers`` one (a
    word-level vocabulary, say) is loaded as itself: AutoTokenizer would pick the LM family's
    class (Qwen2's, GPT-2's) and replace its pre-tokenizer and decoder with byte-level ones."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, use_kernels=False)
        settings = path / "tokenizer_config.json"
        kind = json.loads(settings.read_text()).get("tokenizer_class") if settings.exists() else None
        if kind in ("TokenizersBackend", "PreTrainedTokenizerFast") and (path / "tokenizer.json").exists():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot load a causal LM ({str(e).splitlines()[0]})") from e
    return lm, tokenizer


def load_captioner(folder: str | Path) -> tuple[VideoCaptioner, dict]:
    from safetensors.torch import load_file

    from longvid.encoder.dual import load_encoder

    folder = Path(folder)
    if not (folder / "captioner.json").exists():
        raise ModelLoadError(f"{folder}: no captioner.json (train one with `longvid encoder caption-train`)")
    meta = json.loads((folder / "captioner.json").read_text())
    encoder, _ = load_encoder(meta["encoder"])
    lm, tokenizer = load_lm(meta["lm"])
    model = VideoCaptioner(encoder.video, lm, tokenizer, CaptionerConfig(**meta["config"]))
    missing, unexpected = model.load_state_dict(load_file(folder / "captioner.safetensors"), strict=False)
    if unexpected or any(k.startswith(("resampler.", "gated.")) for k in missing):
        raise ModelLoadError(f"{folder}: captioner weights do not fit")
    return model.eval(), meta


def caption_clips(
    captioner: VideoCaptioner, clips: list, frames: int, max_new_tokens: int, batch: int = 16
) -> list[str]:
    """Captions of ``clips`` (``encoder.data.Clip``), decoded and captioned ``batch`` at a time."""
    from longvid.encoder.data import load_pixels

    size = captioner.encoder.config.image_size
    out: list[str] = []
    for i in range(0, len(clips), batch):
        pixels = torch.stack([load_pixels(c, frames, size) for c in clips[i : i + batch]])
        out += captioner.generate(pixels, max_new_tokens)
    return out


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 (the ``rouge-score`` package, as the captioning papers report it)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise InvalidRequestError("ROUGE-L needs the rouge-score package (pip install 'longvid[encoder]')") from None
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
    return float(sum(scores) / max(1, len(scores)))


def train_captioner(
    encoder_checkpoint: str | Path,
    lm_path: str | Path,
    manifest: str | Path,
    out: str | Path,
    *,
    steps: int = 300,
    batch: int = 16,
    lr: float = 1e-3,
    frames: int | None = None,
    config: CaptionerConfig | None = None,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
    log=None,
) -> list[float]:
    """Train the resampler and gated layers on a manifest's captions; returns the losses."""
    from longvid.encoder.data import load_pixels, read_manifest
    from longvid.encoder.dual import load_encoder

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    encoder, enc_cfg = load_encoder(encoder_checkpoint)
    frames = frames or max(enc_cfg.frames, encoder.video.config.tubelet)
    lm, tokenizer = load_lm(lm_path)
    model = VideoCaptioner(encoder.video, lm, tokenizer, config)
    clips, bad = read_manifest(manifest)
    if not clips:
        raise InvalidRequestError(f"{manifest}: no usable clips ({len(bad)} bad rows)")
    resolution = encoder.video.config.image_size
    pixels = torch.stack([load_pixels(c, frames, resolution) for c in clips])  # small sets: decode once
    captions = [c.caption for c in clips]
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = torch.Generator().manual_seed(seed)
    losses = []
    meter = bar(progress, steps, "captioner", "step", leave=True)
    for step in range(steps):
        idx = torch.randint(len(clips), (min(batch, len(clips)),), generator=rng)
        for group in opt.param_groups:  # 10 % warm-up, then cosine
            group["lr"] = warmup_cosine(step, peak=lr, total=steps, warmup=max(1, steps // 10))
        loss = model(pixels[idx], [captions[i] for i in idx.tolist()])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        meter.update(1)
        meter.set_postfix(loss=f"{losses[-1]:.3f}")
        if log is not None:
            log(step, losses[-1])
    meter.close()
    model.save(out, str(encoder_checkpoint), str(lm_path), frames)
    return losses
