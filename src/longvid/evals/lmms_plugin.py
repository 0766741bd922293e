"""longvid as a model in lmms-eval: ``python -m lmms_eval --model longvid --model_args
pretrained=PATH_OR_ID,frames=256,extend=visual-yarn,pooling=progressive,kv_bits=4 --tasks …``.

lmms-eval (0.7.3, the version tested: ``scripts/install_lmms_eval.sh``) finds out-of-tree
models through the entry-point group ``lmms_eval.models``; longvid's entry point
(``pyproject.toml``) names ``manifest`` here. ``LongvidLMM`` (lmms-eval's model class) exists
when lmms-eval is importable; ``LongvidRequests`` holds the logic and is usable without it.

Requests arrive as lmms-eval ``Instance`` objects whose ``args`` for ``generate_until`` are
``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``; ``doc_to_visual(doc)`` gives
the video path(s). What the plugin does with ``gen_kwargs``:

- ``max_new_tokens``: honoured; ``until``: honoured (a string or a list of strings: the
  answer is cut at the first one);
- ``temperature`` 0, ``do_sample`` false, ``num_beams`` 1, ``top_p``/``top_k`` (meaningless
  when greedy): accepted silently, since longvid decodes greedily;
- sampling or beam search asked for (``do_sample`` true with ``temperature`` > 0, ``num_beams``
  > 1), and any other key: a warning, once per key and value, and greedy decoding.

A request longvid cannot answer (no video or two, a file that is not a video, a refused
option) is answered with an empty string and a warning naming the document, so one bad item
does not end the run; unknown ``--model_args`` end it at once, naming the known ones.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from typing import Any

from longvid.errors import InvalidRequestError, LongvidError
from longvid.models.inference.request import AskOptions

MODEL_ID = "longvid"
# model_args longvid reads: the checkpoint and its device, and every request option
# (``AskOptions``: frames, extend, pooling, reduce, keep, kv_bits, visual_window, ...); and
# those lmms-eval's CLI adds for every model
LOAD_ARGS = ("pretrained", "device")
MODEL_ARGS = LOAD_ARGS + AskOptions.names()
HARNESS_ARGS = ("batch_size", "max_batch_size")
IGNORED_WHEN_GREEDY = ("top_p", "top_k")  # sampling knobs: meaningless when decoding greedily


def manifest():
    """The entry point: lmms-eval's manifest for ``--model longvid``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path="longvid.evals.lmms_plugin.LongvidLMM")


def default_device() -> str:
    """This process's GPU under torchrun (``cuda:LOCAL_RANK``), else the GPU, else the CPU."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"


def _close_process_group() -> None:
    """lmms-eval leaves its process group open; a rank that exits with gloo's threads still
    running can abort at interpreter shutdown, failing the run after its results are written."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"model_args {name} must be a whole number (got {value!r})") from None


class LongvidRequests:
    """The harness-facing logic, free of lmms-eval imports."""

    def __init__(self, llm=None, **model_args: Any) -> None:
        unknown = sorted(set(model_args) - set(MODEL_ARGS) - set(HARNESS_ARGS))
        if unknown:
            raise InvalidRequestError(
                f"unknown model_args {', '.join(unknown)} for --model longvid; known: {', '.join(MODEL_ARGS)}"
            )
        device = model_args.get("device") or default_device()
        # model_args arrive as text ("frames=256,kv_bits=4"): parsed and checked by name, before loading
        request = {k: v for k, v in model_args.items() if k in AskOptions.names()}
        self.options = AskOptions.from_mapping(request, strings=True, where=" in --model_args")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            atexit.register(_close_process_group)
        if llm is None:
            from longvid.models import load

            llm = load(model_args.get("pretrained"), device=device, visual_window=self.options.visual_window)
        self.llm = llm
        self.device = device  # lmms-eval puts its rank-count tensors here
        self.max_new_tokens = self.options.max_new_tokens
        self.task_dict: dict = getattr(self, "task_dict", {})
        self._warned: set = set()

    def _warn_once(self, key: Any, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)

    def _generation(self, gen_kwargs: dict) -> tuple[int, list[str]]:
        """(max new tokens, stop strings) from a request's gen_kwargs; warns about the rest."""
        limit = _int("max_new_tokens", gen_kwargs.get("max_new_tokens", self.max_new_tokens))
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else [str(u) for u in until]
        temperature = gen_kwargs.get("temperature")
        # as in transformers: sampling needs do_sample, and a temperature of 0 means greedy
        sampling = bool(gen_kwargs.get("do_sample")) and (temperature is None or float(temperature) > 0)
        for key, value in gen_kwargs.items():
            if key in ("max_new_tokens", "until"):
                continue
            if key in ("do_sample", "temperature", *IGNORED_WHEN_GREEDY) and not sampling:
                continue
            if key == "num_beams" and _int(key, value or 1) == 1:
                continue
            self._warn_once((key, str(value)), f"longvid decodes greedily: gen_kwargs {key}={value!r} is not applied")
        return limit, until

    def _doc(self, task: str, split: str, doc_id: int):
        return self.task_dict[task][split][doc_id]

    def _answer(self, request) -> tuple[str, dict]:
        context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
        limit, until = self._generation(gen_kwargs or {})
        visuals = doc_to_visual(self._doc(task, split, doc_id)) or []
        videos = [v for v in visuals if isinstance(v, str | os.PathLike)]
        if len(videos) != 1 or len(visuals) != 1:
            raise InvalidRequestError(f"longvid answers about one video per request (got {len(visuals)} visuals)")
        answer = self.llm.ask(str(videos[0]), context, self.options, max_new_tokens=limit)
        text = answer.text
        for stop in until:
            if stop and stop in text:
                text = text.split(stop)[0]
        counts = {"input_tokens": answer.report.prompt_tokens, "output_tokens": answer.report.generated_tokens}
        return text, counts

    def generate_until(self, requests: list) -> list[tuple[str, dict]]:
        """One ``(answer, token counts)`` per request, in order (lmms-eval unwraps both)."""
        out = []
        for request in requests:
            try:
                out.append(self._answer(request))
            except LongvidError as e:
                _, _, _, doc_id, task, split = request.args
                message = f"{task}/{split} doc {doc_id}: not answered ({e})"
                warnings.warn(message, stacklevel=2)
                # lmms-eval may silence Python warnings: the log says it too (stderr by default)
                logging.getLogger("longvid").warning(message)
                out.append(("", {"input_tokens": 0, "output_tokens": 0}))
        return out

    def loglikelihood(self, requests: list) -> list[tuple[float, bool]]:
        raise NotImplementedError("longvid answers by generation: use the generate_until version of a task")

    def generate_until_multi_round(self, requests: list) -> list[str]:
        raise NotImplementedError("longvid does not run multi-round tasks")


try:  # lmms-eval's model base class, when lmms-eval is installed
    from lmms_eval.api.model import lmms as _LmmsBase
except ImportError:
    _LmmsBase = None

if _LmmsBase is not None:

    class LongvidLMM(LongvidRequests, _LmmsBase):
        """``--model longvid``: lmms-eval's model interface over ``LongvidRequests``."""

        def __init__(self, **model_args: Any) -> None:
            _LmmsBase.__init__(self)
            LongvidRequests.__init__(self, **model_args)

        def generate_until(self, requests: list) -> list:
            from lmms_eval.api.instance import GenerationResult, TokenCounts

            return [GenerationResult(text, TokenCounts(**counts)) for text, counts in super().generate_until(requests)]
