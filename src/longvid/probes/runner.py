"""Run probe tasks on a model across frame counts, depths, extension modes and pooling.

Two modes:
- ``cache`` (embedding cache, as LongVA's V-NIAH does): each item's frames are encoded once,
  unpooled; every (extension, pooling) combination pools and prefills from that cache, and
  needle depths are swept by moving the needle frame's features (swapped with the frame at
  the new depth, so the haystack keeps exactly the same frames).
- ``full``: each item is written as an H.264 file and read back through ``longvid.video``,
  resized on decode — the path a user's video takes.

The answer is the model's greedy first token (every probe answer is one token), compared
with the ground truth. Accuracy comes with a Wilson 95 % interval.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from longvid.ahead import Ahead
from longvid.errors import InvalidRequestError
from longvid.extend.modes import POOLING_MODES
from longvid.extend.reduce import REDUCERS, Reducer
from longvid.memory import PeakMemory
from longvid.models.inference.encoding import step_count, swap_steps, take_steps
from longvid.models.inference.llm import VideoLLM
from longvid.probes.tasks import MODEL_SIZE, TASKS, make_item, render_frames, write_item_video
from longvid.progress import bar
from longvid.video.plan import uniform_indices

EVAL_SEED_BASE = 2_000_000  # probe seeds: never used in training (testbed trains below 1e6)


@dataclass
class ProbeRecord:
    task: str
    frames: int
    depth: float | None
    extend: str
    pooling: str
    seed: int
    answer: str
    predicted: str
    correct: bool
    visual_tokens: int
    scale: float
    peak_bytes: int


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _first_token(
    llm: VideoLLM, question: str, visual, extend: str, measure: bool, kv_bits: int = 16, kv_cap: int | None = None
) -> tuple[str, float, int]:
    layout = llm.layout(question, visual, extend)
    with PeakMemory(llm.adapter.device) as mem:
        logits, _ = llm.prefill(layout, kv_bits=kv_bits, kv_cap=kv_cap)
    token = int(logits[-1].argmax())
    word = llm.adapter.tokenizer.convert_ids_to_tokens(token)
    return word, layout.plan.scale, (mem.added if measure else 0)


@dataclass(frozen=True)
class Method:
    """How a probe column makes and holds its tokens: a pooling schedule, a reducer, a KV
    budget (visual tokens per layer), or a uniform subsample of the temporal steps."""

    schedule: object
    reducer: Reducer | None = None
    kv_cap: int | None = None
    steps: int | None = None


def parse_method(llm: VideoLLM, spec: str) -> Method:
    """A probe column's token method: ``uniform`` (the family's own), ``uniform:S`` (stride S),
    ``progressive``, a reducer with its keep ratio (``uniqueness:0.25``, ``merge:0.25``),
    optionally keeping the dropped tokens' places in a 1-D layout (``merge:0.25:original``), a
    KV budget in visual tokens per layer (``budget:4096``), or the video subsampled uniformly
    to a number of temporal steps (``subsample:256``)."""
    name, _, arg = spec.partition(":")
    try:
        if name in REDUCERS:
            keep, _, positions = arg.partition(":")
            reducer = Reducer(name, float(keep) if keep else 0.25, positions or "compact")
            return Method(llm.schedule("uniform"), reducer)
        if name == "uniform" and arg:
            return Method(llm.schedule("uniform", high=int(arg)))
        if name in ("budget", "subsample") and arg:
            count = int(arg)
            if count < 1:
                raise ValueError
            key = "kv_cap" if name == "budget" else "steps"
            return Method(llm.schedule("uniform"), **{key: count})
    except ValueError:
        raise InvalidRequestError(
            f"bad method {spec!r}: uniform:STRIDE, REDUCER:KEEP[:original], budget:TOKENS or subsample:STEPS"
        ) from None
    if name in POOLING_MODES and not arg:
        return Method(llm.schedule(name))
    raise InvalidRequestError(
        f"unknown method {spec!r}; choose from uniform, uniform:STRIDE, progressive, "
        + ", ".join(f"{r}:KEEP[:original]" for r in REDUCERS)
        + ", budget:TOKENS, subsample:STEPS"
    )


def run_probe(
    llm: VideoLLM,
    task: str,
    frames: Iterable[int],
    *,
    depths: Iterable[float] | None = None,
    extends: Iterable[str] = ("none",),
    poolings: Iterable[str] = ("uniform",),
    samples: int = 20,
    form: str = "short",
    mode: str = "cache",
    seed: int = 0,
    kv_bits: int = 16,
    progress: bool = False,
) -> Iterator[ProbeRecord]:
    """Yield one record per (item, depth, extension, pooling). ``poolings``: token methods
    (``parse_method``): poolings and reducers alike."""
    if task not in TASKS:
        raise InvalidRequestError(f"unknown probe task {task!r}; choose from {', '.join(TASKS)}")
    if mode not in ("cache", "full"):
        raise InvalidRequestError(f"unknown probe mode {mode!r}; choose cache or full")
    if samples < 1:
        raise InvalidRequestError(f"samples must be >= 1 (got {samples})")
    depths = list(depths) if depths is not None else [None]
    if task != "needle" and depths != [None]:
        raise InvalidRequestError("depths apply to the needle task only")
    extends, poolings, frames = list(extends), list(poolings), list(frames)
    methods = {p: parse_method(llm, p) for p in poolings}
    total = len(frames) * samples * len(depths) * len(extends) * len(poolings)
    meter = bar(progress, total, f"probe {task}")
    plan = [(n, k) for n in frames for k in range(samples)]

    def item_for(n: int, k: int):
        item_seed = EVAL_SEED_BASE + seed * 100_000 + k
        return make_item(task, item_seed, n, depth=depths[0] if depths[0] is not None else None, form=form)

    def frames_for(pos: int):
        item = item_for(*plan[pos])
        return item, _frames_for(item, mode)

    # full mode writes and decodes real files: the next item's are made in a thread while the
    # model answers this one (one ahead)
    with Ahead(frames_for if mode == "full" else None, range(len(plan)), "longvid-probe") as ahead:
        yield from _run_items(llm, task, plan, depths, extends, poolings, methods, kv_bits, seed, meter,
                              lambda pos: ahead.get(pos) if mode == "full" else frames_for(pos))  # fmt: skip
    meter.close()


def _run_items(llm, task, plan, depths, extends, poolings, methods, kv_bits, seed, meter, frames_at):
    for pos, (n, k) in enumerate(plan):
        base, pixels = frames_at(pos)
        item_seed = EVAL_SEED_BASE + seed * 100_000 + k
        grid = llm.encode_grid(pixels)
        # the needle moves by whole temporal steps: a family that merges two frames per step
        # (Qwen2-VL, Qwen2.5-VL) cannot have one frame of a step exchanged without re-encoding
        per_step = llm.adapter.frames_per_step
        needle = base.key_frames[0] // per_step
        for depth in depths:
            item, g = base, grid
            if depth is not None and task == "needle":
                target = round(depth * (n - 1)) // per_step
                g = swap_steps(grid, needle, target)  # same haystack, needle moved
            for pooling in poolings:
                method = methods[pooling]
                kept = g
                if method.steps is not None and method.steps < step_count(g):  # uniform subsample
                    kept = take_steps(g, uniform_indices(step_count(g), method.steps).tolist())
                visual = llm.pool_grid(kept, method.schedule, reducer=method.reducer)
                for j, extend in enumerate(extends):
                    word, scale, peak = _first_token(llm, item.question, visual, extend, measure=k == 0 and j == 0,
                                                     kv_bits=kv_bits, kv_cap=method.kv_cap)  # fmt: skip
                    yield ProbeRecord(
                        task=task,
                        frames=n,
                        depth=depth,
                        extend=extend,
                        pooling=pooling,
                        seed=item_seed,
                        answer=item.answer,
                        predicted=word,
                        correct=word == item.answer,
                        visual_tokens=int(visual.embeds.shape[0]),
                        scale=round(scale, 4),
                        peak_bytes=peak,
                    )
                    meter.update(1)


def _frames_for(item, mode: str) -> np.ndarray:
    if mode == "cache":
        return render_frames(item)
    from longvid.video import sample_frames

    with tempfile.TemporaryDirectory() as d:
        path = write_item_video(item, Path(d) / "probe.mp4")
        return sample_frames(path, item.num_frames, size=(MODEL_SIZE, MODEL_SIZE)).array


@dataclass
class Row:
    task: str
    frames: int
    extend: str
    pooling: str
    n: int
    accuracy: float
    low: float
    high: float
    visual_tokens: int
    scale: float
    peak_bytes: int


def summarize(records: Iterable[ProbeRecord], by_depth: bool = False) -> list[Row | dict]:
    """Accuracy per (task, frames, extension, pooling) [and depth], with intervals."""
    groups: dict[tuple, list[ProbeRecord]] = defaultdict(list)
    for r in records:
        key = (r.task, r.frames, r.extend, r.pooling) + ((r.depth,) if by_depth else ())
        groups[key].append(r)
    rows = []
    for key, rs in groups.items():
        c = sum(r.correct for r in rs)
        lo, hi = wilson(c, len(rs))
        row = Row(
            task=key[0], frames=key[1], extend=key[2], pooling=key[3], n=len(rs), accuracy=c / len(rs), low=lo,
            high=hi, visual_tokens=rs[0].visual_tokens, scale=rs[0].scale, peak_bytes=max(r.peak_bytes for r in rs),
        )  # fmt: skip
        rows.append({**asdict(row), "depth": key[4]} if by_depth else row)
    return rows


def heatmap(records: list[ProbeRecord], path: str | Path, title: str = "") -> Path:
    """V-NIAH-style heatmaps: frames (x) by needle depth (y), colour = accuracy; one panel
    per (extension, pooling) combination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = sorted({r.frames for r in records})
    depths = sorted({r.depth for r in records if r.depth is not None})
    if not depths:
        raise InvalidRequestError("a heatmap needs needle depths (--depths)")
    combos = list(dict.fromkeys((r.extend, r.pooling) for r in records))
    fig, axes = plt.subplots(
        1, len(combos), figsize=(0.4 + (1.0 + 0.75 * len(frames)) * len(combos), 1.4 + 0.4 * len(depths)), squeeze=False
    )
    for ax, (extend, pooling) in zip(axes[0], combos, strict=True):
        acc = np.full((len(depths), len(frames)), np.nan)
        for i, d in enumerate(depths):
            for j, f in enumerate(frames):
                rs = [r.correct for r in records if (r.frames, r.depth, r.extend, r.pooling) == (f, d, extend, pooling)]
                if rs:
                    acc[i, j] = np.mean(rs)
        im = ax.imshow(acc, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(frames)), [str(f) for f in frames])
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
        ax.set_xlabel("frames")
        ax.set_title(f"{extend} / {pooling}", fontsize=9)
        for i in range(len(depths)):
            for j in range(len(frames)):
                if not np.isnan(acc[i, j]):
                    ax.text(j, i, f"{acc[i, j]:.0%}", ha="center", va="center", fontsize=7)
    axes[0][0].set_ylabel("needle depth")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02)
    fig.suptitle(title or "needle accuracy", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def markdown(rows: list[Row], extends: list[str], poolings: list[str]) -> str:
    """One table per task: rows = frames, columns = extension x pooling, plus tokens/memory."""
    out = []
    for task in sorted({r.task for r in rows}, key=TASKS.index):
        trs = [r for r in rows if r.task == task]
        cols = [(e, p) for e in extends for p in poolings]
        head = (
            "| frames | "
            + " | ".join(f"{e} / {p}" for e, p in cols)
            + " | tokens ("
            + " / ".join(poolings)
            + ") | peak MiB |"
        )
        out += [f"### {task}", "", head, "|---:|" + "---:|" * len(cols) + "---|---:|"]
        for f in sorted({r.frames for r in trs}):
            cells, tokens, peak = [], {}, 0
            for e, p in cols:
                match = [r for r in trs if r.frames == f and r.extend == e and r.pooling == p]
                if match:
                    r = match[0]
                    cells.append(f"{100 * r.accuracy:.0f} ({100 * r.low:.0f}–{100 * r.high:.0f})")
                    tokens[p] = r.visual_tokens
                    peak = max(peak, r.peak_bytes)
                else:
                    cells.append("")
            tok = " / ".join(str(tokens.get(p, "")) for p in poolings)
            out.append(f"| {f} | " + " | ".join(cells) + f" | {tok} | {peak / 2**20:.0f} |")
        out.append("")
    return "\n".join(out)


def to_jsonable(rows) -> list[dict]:
    return [asdict(r) if isinstance(r, Row) else r for r in rows]


def write_results(
    records: list[ProbeRecord],
    out: str | Path,
    name: str,
    extends: list[str],
    poolings: list[str],
    heatmap_title: str | None = None,
) -> tuple[Path, str]:
    """``OUT/NAME.json`` (cells and every record) and ``OUT/NAME.md`` (the table), plus a
    ``.png`` depth heatmap when ``heatmap_title`` is given; returns (the path stem, the table)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / name
    rows = summarize(records)
    payload = {"rows": to_jsonable(rows), "records": [asdict(r) for r in records]}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    table = markdown(rows, extends, poolings)
    stem.with_suffix(".md").write_text(table)
    if heatmap_title is not None:
        heatmap(records, stem.with_suffix(".png"), title=heatmap_title)
    return stem, table
