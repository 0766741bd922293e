"""longvid as a model in lmms-eval: ``lmms-eval --model longvid --model_args
pretrained=PATH_OR_ID,frames=256,extend=visual-yarn,pooling=progressive,kv_bits=4 --tasks …``.

lmms-eval (0.7.3 and later) finds out-of-tree models through the entry-point group
``lmms_eval.models``; longvid's entry point (``pyproject.toml``) names ``manifest`` here,
which returns lmms-eval's ``ModelManifest``. lmms-eval is imported only when the harness
asks for the model: installing it beside longvid is the user's choice (``pip install
longvid[lmms]``; lmms-eval pins ``av<16`` and pulls torchvision, which breaks the CPU torch
build on some machines).

Requests arrive as lmms-eval ``Instance`` objects whose ``args`` for ``generate_until`` are
``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``; ``doc_to_visual(doc)`` gives
the video path(s). The answer is the generated text, cut at the first ``until`` string.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "longvid"


def manifest():
    """The entry point: lmms-eval's manifest for ``--model longvid``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path="longvid.evals.lmms_plugin.LongvidLMM")


def _bool_or(value: Any, kind: type):
    if value is None or isinstance(value, kind):
        return value
    return kind(value)


class LongvidRequests:
    """The harness-facing logic, free of lmms-eval imports (tested on its own)."""

    def __init__(
        self,
        pretrained: str | None = None,
        frames: int | str | None = None,
        extend: str = "none",
        pooling: str = "uniform",
        kv_bits: int | str = 16,
        device: str = "cpu",
        max_new_tokens: int | str = 32,
        llm=None,
        **unused: Any,
    ) -> None:
        if llm is None:
            from longvid.models import load

            llm = load(pretrained, device=device)
        self.llm = llm
        self.options = {
            "frames": _bool_or(frames, int),
            "extend": extend,
            "pooling": pooling,
            "kv_bits": int(kv_bits),
        }
        self.max_new_tokens = int(max_new_tokens)
        self.task_dict: dict = getattr(self, "task_dict", {})

    def _doc(self, task: str, split: str, doc_id: int):
        return self.task_dict[task][split][doc_id]

    def generate_until(self, requests: list) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            visuals = doc_to_visual(self._doc(task, split, doc_id))
            videos = [v for v in visuals if isinstance(v, str)]
            if len(videos) != 1:
                raise ValueError(f"longvid answers about one video per request (got {len(visuals)} visuals)")
            limit = int(gen_kwargs.get("max_new_tokens", self.max_new_tokens))
            answer = self.llm.ask(videos[0], context, max_new_tokens=limit, **self.options)
            text = answer.text
            for stop in gen_kwargs.get("until", []) or []:
                if stop and stop in text:
                    text = text.split(stop)[0]
            out.append(text)
        return out

    def loglikelihood(self, requests: list) -> list[tuple[float, bool]]:
        raise NotImplementedError("longvid answers by generation: use the generate_until version of a task")

    def generate_until_multi_round(self, requests: list) -> list[str]:
        raise NotImplementedError("longvid does not run multi-round tasks")


def __getattr__(name: str):
    # ``LongvidLMM`` subclasses lmms-eval's model base class, built only when lmms-eval asks
    if name == "LongvidLMM":
        from lmms_eval.api.model import lmms

        class LongvidLMM(LongvidRequests, lmms):
            def __init__(self, **kwargs: Any) -> None:
                lmms.__init__(self)
                LongvidRequests.__init__(self, **kwargs)

        globals()["LongvidLMM"] = LongvidLMM
        return LongvidLMM
    raise AttributeError(name)
