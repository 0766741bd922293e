"""A checkpoint's small files, read without its weights: config, tokenizer, processor config
and chat template. ``prepare``, ``inspect`` and ``load`` all start here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longvid.errors import ModelLoadError

# where transformers 5 looks for a video processor's settings, first match wins
PREPROCESSOR_FILES = (
    "video_preprocessor_config.json",
    "video_processor/preprocessor_config.json",
    "preprocessor_config.json",
)


@dataclass
class CheckpointFiles:
    """Everything about a checkpoint that is not weights."""

    name: str
    source: Path | str  # a folder, or a hub id
    config: Any  # transformers PretrainedConfig
    tokenizer: Any
    preprocess: dict = field(default_factory=dict)
    preprocess_file: str | None = None
    chat_template: str | None = None
    revision: str | None = None  # a hub id's branch, tag or commit (None: main)


# a hub repo as users type it: "name" or "org/name", dots allowed ("Qwen/Qwen2.5-VL-3B-Instruct")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?")


def resolve(model: str | Path, revision: str | None = None) -> tuple[Path | str, str | None]:
    """(source, revision): an existing model folder (it must hold config.json), or anything
    else that reads as a hub repo id, ``org/name`` or ``org/name@revision`` (files from the
    Hugging Face cache, or downloaded when online). A path that does not exist and cannot be a
    hub id is refused in one line."""
    text = str(model)
    p = Path(text).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelLoadError(f"{p}: not a model folder (no config.json)")
        return p, None
    repo, at, pinned = text.partition("@")
    if at:
        if not pinned or (revision is not None and revision != pinned):
            raise ModelLoadError(f"{model}: give the revision once, as ORG/NAME@REVISION or revision=")
        revision = pinned
    if isinstance(model, Path) or text.startswith((".", "/", "~")) or not HUB_ID.fullmatch(repo) or ".." in repo:
        raise ModelLoadError(f"{model}: no such model folder")
    return repo, revision


def _hub_error(model, repo: str, revision: str | None, e: Exception) -> ModelLoadError:
    from huggingface_hub import constants

    where = "in the Hugging Face cache (offline: HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else "on the hub"
    pinned = f"@{revision}" if revision else ""
    return ModelLoadError(
        f"{model}: no such model folder, and no hub repo {repo}{pinned} {where} ({str(e).splitlines()[0][:200]})"
    )


def read_json(source: Path | str, name: str, revision: str | None = None) -> dict | None:
    """A JSON file of the checkpoint, or None when it has none."""
    if isinstance(source, Path):
        f = source / name
        if not f.exists():
            return None
    else:
        from transformers.utils import cached_file

        try:
            found = cached_file(source, name, revision=revision, _raise_exceptions_for_missing_entries=False)
        except OSError:
            return None
        if not found:
            return None
        f = Path(found)
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{source}: {name} is not valid JSON ({e})") from e


def _chat_template(source: Path | str, tokenizer, revision: str | None = None) -> str | None:
    if isinstance(source, Path) and (source / "chat_template.jinja").exists():
        return (source / "chat_template.jinja").read_text(encoding="utf-8")
    processor = read_json(source, "chat_template.json", revision) or {}
    return processor.get("chat_template") or getattr(tokenizer, "chat_template", None) or None


def read_checkpoint(
    model: str | Path, check_config: Callable[[Any], object] | None = None, revision: str | None = None
) -> CheckpointFiles:
    """Config, tokenizer, processor config and chat template of ``model`` (folder, or hub id
    with an optional ``@revision`` or ``revision``); ``check_config`` sees the config before
    anything else is read (and may raise)."""
    from transformers import AutoConfig, AutoTokenizer

    source, revision = resolve(model, revision)
    try:
        config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        if isinstance(source, str):
            raise _hub_error(model, source, revision, e) from e
        raise ModelLoadError(f"{model}: cannot read its config ({str(e).splitlines()[0]})") from e
    if check_config is not None:
        check_config(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{model}: cannot read its tokenizer ({str(e).splitlines()[0]})") from e
    preprocess, preprocess_file = {}, None
    for name in PREPROCESSOR_FILES:
        found = read_json(source, name, revision)
        if found is not None:
            preprocess, preprocess_file = found, name
            break
    return CheckpointFiles(
        name=str(model),
        source=source,
        config=config,
        tokenizer=tokenizer,
        preprocess=preprocess,
        preprocess_file=preprocess_file,
        chat_template=_chat_template(source, tokenizer, revision),
        revision=revision,
    )
