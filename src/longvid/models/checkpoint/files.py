"""A checkpoint's small files, read without its weights: config, tokenizer, processor config
and chat template. ``prepare``, ``inspect`` and ``load`` all start here."""

from __future__ import annotations

import json
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


def resolve(model: str | Path) -> Path | str:
    """A model folder (must hold config.json) or, for anything that does not look like a
    path, a hub id."""
    p = Path(model).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelLoadError(f"{p}: not a model folder (no config.json)")
        return p
    if str(model).startswith((".", "/", "~")) or Path(str(model)).suffix:
        raise ModelLoadError(f"{model}: no such model folder")
    return str(model)


def read_json(source: Path | str, name: str) -> dict | None:
    """A JSON file of the checkpoint, or None when it has none."""
    if isinstance(source, Path):
        f = source / name
        if not f.exists():
            return None
    else:
        from transformers.utils import cached_file

        try:
            found = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
        except OSError:
            return None
        if not found:
            return None
        f = Path(found)
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{source}: {name} is not valid JSON ({e})") from e


def _chat_template(source: Path | str, tokenizer) -> str | None:
    if isinstance(source, Path) and (source / "chat_template.jinja").exists():
        return (source / "chat_template.jinja").read_text(encoding="utf-8")
    processor = read_json(source, "chat_template.json") or {}
    return processor.get("chat_template") or getattr(tokenizer, "chat_template", None) or None


def read_checkpoint(model: str | Path, check_config: Callable[[Any], object] | None = None) -> CheckpointFiles:
    """Config, tokenizer, processor config and chat template of ``model`` (folder or hub id);
    ``check_config`` sees the config before anything else is read (and may raise)."""
    from transformers import AutoConfig, AutoTokenizer

    source = resolve(model)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{model}: cannot read its config ({str(e).splitlines()[0]})") from e
    if check_config is not None:
        check_config(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{model}: cannot read its tokenizer ({str(e).splitlines()[0]})") from e
    preprocess, preprocess_file = {}, None
    for name in PREPROCESSOR_FILES:
        found = read_json(source, name)
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
        chat_template=_chat_template(source, tokenizer),
    )
