"""Pooled visual tokens held off the device while a KV budget holds the cache.

Under a KV budget the cache stops growing, but the video's pooled tokens, waiting for the
prefill, still grow with every frame: an eighth of their KV cost for a 7B, so at 16x the
budget's frames they would double the peak. The pooler hands each block to a ``BlockStore``
as it is made, and the prefill reads one block at a time back: in a temporary file when the
model runs on the CPU (so the process holds none of them), in host memory when it runs on an
accelerator (its memory holds none of them).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace

import torch

from longvid.errors import LongvidError


class BlockStore:
    """Where spilled blocks live: an unnamed temporary file (deleted when closed, or when the
    store is collected), or a list of host tensors."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        # unnamed: removed by the OS when closed or collected, whatever happens to the request
        self.file = tempfile.TemporaryFile() if self.device.type == "cpu" else None  # noqa: SIM115
        self.host: list[torch.Tensor] = []
        self.end = 0

    def put(self, block: torch.Tensor) -> SpilledBlock:
        block = block.detach()
        if self.file is None:
            self.host.append(block.to("cpu"))
            return SpilledBlock(self, len(self.host) - 1, tuple(block.shape), block.dtype)
        raw = block.contiguous().view(torch.uint8).numpy().tobytes() if block.numel() else b""
        self.file.seek(self.end)
        try:
            self.file.write(raw)
            self.file.flush()
        except OSError as e:  # a full disk: said in one line, with where the file was
            raise LongvidError(
                f"could not hold the video's tokens for the KV budget in {tempfile.gettempdir()} ({e.strerror}, "
                f"{self.end / 2**20:.0f} MiB written): free space there or point TMPDIR elsewhere"
            ) from None
        spilled = SpilledBlock(self, self.end, tuple(block.shape), block.dtype)
        self.end += len(raw)
        return spilled

    def read(self, where: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if self.file is None:
            return self.host[where]
        size = torch.Size(shape).numel() * dtype.itemsize
        self.file.seek(where)
        if not size:
            return torch.empty(shape, dtype=dtype)
        raw = bytearray(self.file.read(size))
        return torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape)


@dataclass(frozen=True)
class SpilledBlock:
    """A block in a ``BlockStore``: its shape, and the device and dtype it is read back to."""

    store: BlockStore
    where: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    target: tuple[torch.device | str | None, torch.dtype | None] = (None, None)

    def on(self, device: torch.device | str, dtype: torch.dtype) -> SpilledBlock:
        """The same block, read back to ``device`` as ``dtype``."""
        return replace(self, target=(device, dtype))

    def load(self) -> torch.Tensor:
        block = self.store.read(self.where, self.shape, self.dtype)
        device, dtype = self.target
        return block.to(device or self.store.device, dtype or self.dtype)


Block = torch.Tensor | SpilledBlock


def load(block: Block) -> torch.Tensor:
    """A block as a tensor (read back when spilled)."""
    return block.load() if isinstance(block, SpilledBlock) else block


def on(block: Block, device: torch.device | str, dtype: torch.dtype) -> Block:
    """A block moved to ``device`` as ``dtype``: a tensor now, a spilled block when read."""
    return block.on(device, dtype) if isinstance(block, SpilledBlock) else block.to(device, dtype)


class Rows:
    """Blocks read as one sequence of rows: ``rows[a:b]`` reads only the blocks it touches
    (Qwen3-VL's DeepStack rows, handed to each prefill chunk)."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.starts = [0]
        for b in blocks:
            self.starts.append(self.starts[-1] + int(b.shape[0]))

    def __len__(self) -> int:
        return self.starts[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.blocks[0].shape[1:]) if self.blocks else (0,)

    def __getitem__(self, index: slice) -> torch.Tensor:
        start, stop, _ = index.indices(len(self))
        parts = []
        for i, b in enumerate(self.blocks):
            lo, hi = self.starts[i], self.starts[i + 1]
            if hi <= start or lo >= stop:
                continue
            parts.append(load(b)[max(start, lo) - lo : min(stop, hi) - lo])
        if not parts:
            return load(self.blocks[0])[:0]
        return torch.cat(parts) if len(parts) > 1 else parts[0]
