"""Helpers and constants the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "longvid" / "data" / "sample.mp4"

# name -> how it is written; every frame carries its index in its pixels
VIDEO_KINDS = {
    "h264_bframes_2997.mp4": dict(codec="libx264", gop=30, bframes=3, fps="30000/1001"),
    "h264_longgop.mp4": dict(codec="libx264", gop=250, bframes=3, fps=30),
    "vp9.webm": dict(codec="libvpx-vp9", gop=40, fps=25),
    "mpeg4_bframes.mkv": dict(codec="mpeg4", gop=25, bframes=2, fps=24),
}
NUM_FRAMES = 600

# the vocabulary of the synthetic captions, for tiny text towers
BERT_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", ",", "then", "appears", "moves", "left", "right",
              "up", "down", "red", "green", "blue", "yellow", "white", "black", "orange", "purple", "cyan",
              "magenta", "square", "circle", "triangle"]  # fmt: skip


def run(capsys, *args) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr)."""
    from longvid.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def save_tiny_bert(folder: Path, max_positions: int = 64) -> Path:
    """A random one-layer BERT with the captions' vocabulary (a text tower for tests)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(BERT_WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=max_positions)  # fmt: skip
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def truncated_faststart_mp4(folder: Path, frames: int = 300, keep: float = 0.6) -> Path:
    """A stamped video remuxed with its index first (faststart), then cut: the header
    promises ``frames`` frames, the file holds about ``keep`` of them."""
    import av

    from longvid.video.synth import write_stamped_video

    full = folder / "full.mp4"
    write_stamped_video(full, frames)
    moved = folder / "faststart.mp4"
    with av.open(str(full)) as src, av.open(str(moved), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for pkt in src.demux(src.streams.video[0]):
            if pkt.size:
                pkt.stream = stream
                dst.mux(pkt)
    cut = folder / "cut_faststart.mp4"
    data = moved.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    return cut
