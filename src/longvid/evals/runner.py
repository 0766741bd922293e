"""Resumable benchmark runs: one JSON line per item, appended as it completes.

A run that stops (killed, out of memory, a lost node) starts again where it stopped: the
lines already written are kept and their items skipped; items that failed are asked again;
unreadable lines (a last line cut off mid-write) are set aside and their items redone
(``evals/results.py``). A results file is tied to the settings that wrote it. Under
``torchrun`` (``RANK`` / ``WORLD_SIZE`` set) each process takes every WORLD_SIZE-th item and appends to its own file
(``results.rank0-of-2.jsonl``, …); rank 0 waits for the others and merges them, in
benchmark order, into the main file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from longvid.ahead import Ahead
from longvid.errors import InvalidRequestError
from longvid.evals.answerers import Answerer, as_answerer
from longvid.evals.answers import grade
from longvid.evals.benchmarks import Item, build_prompt, content_hash, load_benchmark, summarize
from longvid.evals.results import check_results_path, claim, latest_by_id, lock, merge, read_results
from longvid.models.inference.request import AskOptions
from longvid.progress import bar


@dataclass
class Shard:
    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))

    def path(self, out: Path) -> Path:
        if self.world == 1:
            return out
        return out.with_name(f"{out.stem}.rank{self.rank}-of-{self.world}{out.suffix}")


def device_for(device: str, shard: Shard) -> str:
    """Under torchrun a bare ``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``)."""
    if device.startswith("cuda") and shard.world > 1 and ":" not in device:
        return f"cuda:{os.environ.get('LOCAL_RANK', shard.rank)}"
    return device


def run_identity(bench: str, data: str | Path, model: str, options: AskOptions | dict) -> dict:
    """What produces a run's answers: benchmark, data folder, model, the options that change
    an answer (``AskOptions.identity``), and longvid's version (a results file is tied to it:
    ``results.claim``)."""
    from importlib.metadata import version

    fields = options.identity() if isinstance(options, AskOptions) else dict(options)
    # the data's content, not only its folder: an annotation changed after a run is another run
    content = content_hash(load_benchmark(bench, data))
    return {"benchmark": bench, "data": str(Path(data).resolve()), "data_content": content, "model": str(model),
            **fields, "longvid": version("longvid")}  # fmt: skip


def _graded(item: Item, response: str, extra: dict, seconds: float) -> dict:
    pred, correct = grade(response, item.options, item.answer)
    return {
        "id": item.id,
        "response": response,
        "pred": pred,
        "answer": item.answer,
        "correct": correct,
        "splits": item.splits,
        "seconds": round(seconds, 3),
        **extra,
    }


def answer_item(ask: Callable[[Path, str], tuple[str, dict]], bench: str, item: Item, video=None) -> dict:
    """Ask one item and grade it; what is written per line. ``video``: its frames, decoded
    ahead (default: the item's file)."""
    t0 = time.perf_counter()
    response, extra = ask(item.source if video is None else video, build_prompt(bench, item))
    return _graded(item, response, extra, time.perf_counter() - t0)


def answer_group(ask: Answerer, bench: str, group: list[Item], video=None) -> list[dict]:
    """The items of one video, together through ``ask.ask_many`` (for a model: one encoding
    and one shared prefill). Seconds are shared out evenly."""
    ask = as_answerer(ask)
    if len(group) == 1:
        return [answer_item(ask, bench, item, video) for item in group]
    t0 = time.perf_counter()
    answered = ask.ask_many(group[0].source if video is None else video, [build_prompt(bench, item) for item in group])
    seconds = (time.perf_counter() - t0) / len(group)
    return [_graded(item, response, extra, seconds) for item, (response, extra) in zip(group, answered, strict=True)]


def _by_video(items: list[Item]) -> list[list[Item]]:
    """Consecutive items that share a video, in order."""
    groups: list[list[Item]] = []
    for item in items:
        if groups and groups[-1][0].source == item.source:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def run_eval(
    bench: str,
    data: str | Path,
    out: str | Path,
    ask: Answerer | Callable[[Path, str], tuple[str, dict]],
    limit: int | None = None,
    shard: Shard | None = None,
    progress: bool = True,
    on_error: str = "record",
    identity: dict | None = None,
) -> dict | None:
    """Run (or continue) a benchmark; returns the summary (on rank 0; None elsewhere).

    ``ask``: an ``Answerer``, or a function ``ask(video, prompt) -> (response text, extra
    fields for the line)``. An item that fails (its video cannot be read, the request is
    refused) is recorded with its error, never scored, and asked again when the run is
    continued (``on_error="raise"`` stops instead). ``identity``: the settings that produce
    the answers (``results.claim``); a results file written under other settings is refused.

    The steps: the items this rank answers (``select_items``), what earlier runs answered
    (``resume``), the rest answered a video at a time and appended (``answer_items``), the
    ranks' files merged (rank 0), and the summary."""
    out = Path(out)
    check_results_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shard = shard or Shard.from_env()
    items, mine = select_items(bench, data, limit, shard)
    path = shard.path(out)
    with lock(path):
        if identity is not None:
            claim(out, identity, [path, out])
        done = resume(out, path, shard, items)
        answer_items(bench, mine, done, path, as_answerer(ask), shard, progress, on_error)
    if shard.world > 1:
        _barrier()
        if shard.rank != 0:
            _finish()
            return None
        merge(out, [Shard(r, shard.world).path(out) for r in range(shard.world)], [it.id for it in items])
        _finish()
    by_id = latest_by_id(read_results(out))
    return summarize(bench, [by_id[it.id] for it in items if it.id in by_id])


def select_items(bench: str, data: str | Path, limit: int | None, shard: Shard) -> tuple[list[Item], list[Item]]:
    """(the run's items, this rank's): every WORLD-th video's items, a video on one rank."""
    if limit is not None and limit < 1:
        raise InvalidRequestError(f"--limit must be >= 1 (got {limit})")
    items = load_benchmark(bench, data)
    if limit is not None:
        items = items[:limit]
    mine = [it for group in _by_video(items)[shard.rank :: shard.world] for it in group]
    return items, mine


def resume(out: Path, path: Path, shard: Shard, items: list[Item]) -> dict[str, dict]:
    """The lines earlier runs wrote, by item id (this rank's file, and under torchrun the merged
    file of an earlier run), each vetted against the items (``vet``); the rest set aside."""
    check = vet(items)
    done = latest_by_id(read_results(path, repair=True, check=check))
    if shard.world > 1:
        merged = latest_by_id(read_results(out, repair=shard.rank == 0, check=check))
        done.update({k: r for k, r in merged.items() if k not in done})
    return done


def vet(items: list[Item]):
    """``check(record)`` for ``read_results``: why a line read back cannot be trusted, or None.
    A line must name an item of this benchmark, carry fields of the right types, and grade as
    its response grades against these annotations (a stale or edited line does not)."""
    by_id = {it.id: it for it in items}
    optional_text = ("response", "pred", "answer")

    def check(r: dict) -> str | None:
        item = by_id.get(r["id"])
        if item is None:
            return "an id no item of the benchmark has"
        if any(not isinstance(r.get(k), str | None) for k in optional_text) or not isinstance(
            r.get("correct"), bool | None
        ):
            return "a field of the wrong type"
        if "error" in r:
            return None if isinstance(r["error"], str) else "a field of the wrong type"
        if not isinstance(r.get("response"), str):
            return "an answered line without its response"
        pred, correct = grade(r["response"], item.options, item.answer)
        if (r.get("pred"), r.get("answer"), r.get("correct")) != (pred, item.answer, correct):
            return "a grade that does not follow from its response and the annotations"
        return None

    return check


def answer_items(bench: str, mine: list[Item], done: dict[str, dict], path: Path, ask: Answerer, shard: Shard,
                 progress: bool = True, on_error: str = "record") -> None:  # fmt: skip
    """Answer the items not done (failed ones again), a video's items together, each video's
    lines appended as it completes: a kill loses at most one video's answers."""
    from longvid.errors import LongvidError

    todo = [it for it in mine if it.id not in done or "error" in done[it.id]]
    correct = sum(bool(done[it.id].get("correct")) for it in mine if it.id in done and "error" not in done[it.id])
    meter = bar(progress, len(mine), f"{bench} r{shard.rank}", "item", initial=len(mine) - len(todo), leave=True)
    groups = _by_video(todo)
    ahead = Ahead(ask.load if ask.decodes_ahead else None, [g[0].source for g in groups], "longvid-prefetch")
    with path.open("a", encoding="utf-8") as f, ahead:
        n = 0
        for k, group in enumerate(groups):
            try:
                recs = answer_group(ask, bench, group, ahead.get(k))
            except LongvidError as e:
                if on_error == "raise":
                    raise
                recs = [{"id": item.id, "response": None, "pred": None, "answer": item.answer, "correct": None,
                         "splits": item.splits, "error": str(e)} for item in group]  # fmt: skip
            for rec in recs:
                f.write(json.dumps(rec) + "\n")
                f.flush()
                n += 1
                correct += bool(rec.get("correct"))
                meter.update(1)
                meter.set_postfix(acc=f"{correct / (len(mine) - len(todo) + n):.3f}")
    meter.close()


def write_summary(out: Path, summary: dict, identity: dict, shard: Shard) -> Path:
    """``OUT.summary.json``: the summary with the run's identity and process count."""
    summary["config"] = {**identity, "processes": shard.world}
    path = Path(out).with_suffix(".summary.json")
    path.write_text(json.dumps(summary, indent=1))
    return path


def _barrier() -> None:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()


def _finish() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def format_summary(summary: dict) -> str:
    """A Markdown table: overall, then each split's groups."""

    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}"

    lines = [
        f"**{summary['benchmark']}**: {summary['scored']} scored items, accuracy {pct(summary['accuracy'])} %"
        + (f", M-Avg {pct(summary['m_avg'])} %" if "m_avg" in summary else "")
        + f"; unparsed answers {summary['unparsed']}"
        + (
            f"; {summary['failed']} items failed (not scored; asked again on the next run)"
            if summary.get("failed")
            else ""
        )
        + (f"; {summary['unscored']} without public answers (not scored)" if summary["unscored"] else ""),
        "",
        "| split | group | n | accuracy % | unparsed |",
        "|---|---|---:|---:|---:|",
    ]
    for key, groups in summary["splits"].items():
        for g, s in groups.items():
            lines.append(f"| {key} | {g} | {s['n']} | {pct(s['accuracy'])} | {s['unparsed']} |")
    return "\n".join(lines)


def compare(bench: str | None, a: Path, b: Path) -> str:
    """Side by side: two runs' accuracy overall and per split group, with the difference.
    ``bench``: the benchmark (default: the one the runs' ``.run.json`` name, which must agree)."""
    from longvid.evals.results import identity_path

    named = set()
    for path in (a, b):
        if not Path(path).is_file():
            raise InvalidRequestError(f"--compare: no results file at {path}")
        side = identity_path(Path(path))
        if side.exists():
            named.add(json.loads(side.read_text()).get("benchmark"))
    if bench is not None:
        named.add(bench)
    if len(named) > 1:
        raise InvalidRequestError(f"--compare: the runs are of different benchmarks ({', '.join(sorted(named))})")
    if not named:
        raise InvalidRequestError("--compare: name the benchmark with --bench (the runs have no .run.json)")
    bench = named.pop()
    sa = summarize(bench, list(latest_by_id(read_results(a)).values()))
    sb = summarize(bench, list(latest_by_id(read_results(b)).values()))

    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}"

    def diff(x, y):
        return "–" if x is None or y is None else f"{100 * (y - x):+.1f}"

    lines = [
        f"| split | group | n | {a.name} % | {b.name} % | Δ |",
        "|---|---|---:|---:|---:|---:|",
        f"| overall | | {sa['scored']}/{sb['scored']} | {pct(sa['accuracy'])} | {pct(sb['accuracy'])} | "
        f"{diff(sa['accuracy'], sb['accuracy'])} |",
    ]
    for key in sorted(set(sa["splits"]) | set(sb["splits"])):
        ga, gb = sa["splits"].get(key, {}), sb["splits"].get(key, {})
        for g in sorted(set(ga) | set(gb)):
            x, y = ga.get(g, {}), gb.get(g, {})
            lines.append(
                f"| {key} | {g} | {x.get('n', 0)}/{y.get('n', 0)} | {pct(x.get('accuracy'))} | "
                f"{pct(y.get('accuracy'))} | {diff(x.get('accuracy'), y.get('accuracy'))} |"
            )
    lines.append(f"| unparsed | | | {sa['unparsed']} | {sb['unparsed']} | |")
    return "\n".join(lines)
