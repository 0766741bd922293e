"""longvid inside lmms-eval: the plugin's request handling (without lmms-eval), then the real
lmms-eval CLI on a five-item local task (tests/lmms_task), in one process and in two under
torchrun, which must agree. CI installs lmms-eval (scripts/install_lmms_eval.sh); elsewhere
those tests are skipped with that message."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longvid.errors import InvalidRequestError
from longvid.evals.lmms_plugin import LongvidRequests
from longvid.probes.tasks import make_item, write_item_video
from tests.support import SAMPLE

TASK_DIR = Path(__file__).resolve().parent / "lmms_task"
QUESTION = "what colour is the shape with the marker ?"


class Request:
    """Shaped as lmms-eval's ``Instance`` for generate_until: ``args`` is (context,
    gen_kwargs, doc_to_visual, doc_id, task, split)."""

    def __init__(self, context, gen_kwargs, doc_id, visuals=None):
        to_visual = (lambda doc: visuals) if visuals is not None else (lambda doc: [doc["video"]])
        self.args = (context, gen_kwargs, to_visual, doc_id, "t", "test")


@pytest.fixture(scope="module")
def plugin():
    from longvid.models import load

    model = LongvidRequests(llm=load(None), frames="16", kv_bits="16")
    model.task_dict = {"t": {"test": [{"video": str(SAMPLE)}, {"video": "/nowhere/missing.mp4"}]}}
    return model


def test_answers_with_token_counts_and_until_as_a_string_or_a_list(plugin):
    direct = plugin.llm.ask(str(SAMPLE), QUESTION, frames=16, max_new_tokens=4)
    assert direct.text == "purple"
    got = plugin.generate_until([Request(QUESTION, {"until": ["\n"], "max_new_tokens": 4}, 0)])
    assert got == [("purple", {"input_tokens": direct.report.prompt_tokens, "output_tokens": 1})]
    # a string is one stop sequence, not a list of characters
    ((cut, _),) = plugin.generate_until([Request(QUESTION, {"until": "ple", "max_new_tokens": 4}, 0)])
    assert cut == "pur"


def test_greedy_settings_pass_and_sampling_is_named_once(plugin):
    greedy = {"max_new_tokens": 2, "temperature": 0, "do_sample": False, "num_beams": 1, "top_p": 1.0}
    with warnings_recorded() as caught:
        plugin.generate_until([Request(QUESTION, greedy, 0)])
    assert caught == []
    sampling = {"max_new_tokens": 2, "temperature": 0.7, "do_sample": True, "num_beams": 3}
    with warnings_recorded() as caught:
        plugin.generate_until([Request(QUESTION, sampling, 0), Request(QUESTION, sampling, 0)])
    assert sorted(caught) == [
        "longvid decodes greedily: gen_kwargs do_sample=True is not applied",
        "longvid decodes greedily: gen_kwargs num_beams=3 is not applied",
        "longvid decodes greedily: gen_kwargs temperature=0.7 is not applied",
    ]  # once each, not once per request


def test_a_bad_request_is_an_empty_answer_not_the_end_of_the_run(plugin):
    requests = [
        Request(QUESTION, {"max_new_tokens": 2}, 1),  # a missing video
        Request(QUESTION, {"max_new_tokens": 2}, 0, visuals=[str(SAMPLE), str(SAMPLE)]),  # two videos
        Request(QUESTION, {"max_new_tokens": 0}, 0),  # refused by ask
        Request(QUESTION, {"max_new_tokens": 2}, 0),
    ]
    with pytest.warns(UserWarning, match="t/test doc 1: not answered .*no such file"):
        got = plugin.generate_until(requests)
    assert [text for text, _ in got] == ["", "", "", "purple"]


def test_unknown_model_args_are_refused_naming_the_known_ones():
    with pytest.raises(InvalidRequestError, match=r"unknown model_args frame, kv-bits, pretrianed .* known: .*kv_bits"):
        LongvidRequests(llm=object(), **{"frame": "8", "kv-bits": "4", "pretrianed": "foo"})
    with pytest.raises(InvalidRequestError, match="frames must be a whole number"):
        LongvidRequests(llm=object(), frames="many")
    ok = LongvidRequests(llm=object(), frames="8", batch_size=1, max_batch_size=None)  # lmms-eval adds these
    assert ok.options.frames == 8 and ok.device == "cpu"  # no GPU here: the CPU


class warnings_recorded:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        self._caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc):
        self.messages.extend(str(w.message) for w in self._caught)
        return self._ctx.__exit__(*exc)


# ------------------------------------------------------------------ the real lmms-eval


def _lmms_eval_or_skip():
    try:
        import lmms_eval.evaluator  # noqa: F401
    except ImportError:
        message = "lmms-eval is not installed (bash scripts/install_lmms_eval.sh): the lmms-eval CLI tests cannot run"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it; missing there is a failure, not a pass
        pytest.skip(message)


def test_the_class_lmms_eval_builds_is_importable_and_picklable():
    _lmms_eval_or_skip()
    from lmms_eval.api.model import lmms

    from longvid.evals.lmms_plugin import LongvidLMM, manifest

    assert issubclass(LongvidLMM, lmms) and LongvidLMM.__qualname__ == "LongvidLMM"
    assert pickle.loads(pickle.dumps(LongvidLMM)) is LongvidLMM
    assert manifest().model_id == "longvid"


@pytest.fixture(scope="module")
def task_videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lmms_videos")
    for line in (TASK_DIR / "items.jsonl").read_text().splitlines():
        doc = json.loads(line)
        if doc["seed"] is not None:
            item = make_item(doc["task"], doc["seed"], 16)
            assert (item.question, item.answer) == (doc["question"], doc["answer"])  # the task's truth
            write_item_video(item, folder / doc["video"])
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lmms_eval_cli_in_one_and_two_processes_agree(task_videos, tmp_path):
    """And lmms-eval's own OpenAI-compatible model pointed at `longvid serve` (videos passed as
    file URLs inside the allowed folders) gives the in-process plugin's answers."""
    _lmms_eval_or_skip()
    env = {**os.environ, "LONGVID_LMMS_VIDEOS": str(task_videos), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1", "OPENAI_API_KEY": "none"}  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "longvid", "serve", "--port", str(port), "--allowed-local-media-path", str(task_videos),
         "--allowed-local-media-path", str(SAMPLE.parent)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lmms = ["-m", "lmms_eval", "--model", "longvid", "--model_args", "frames=16", "--tasks", "longvid_probe",
            "--include_path", ".", "--log_samples"]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]  # fmt: skip
    runs = {
        "one": subprocess.Popen([sys.executable, *lmms, "--output_path", str(tmp_path / "one")], cwd=TASK_DIR,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        "two": subprocess.Popen([*torchrun, *lmms, "--output_path", str(tmp_path / "two")], cwd=TASK_DIR,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    }  # fmt: skip
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}: {out[-3000:]}"
    import urllib.request

    try:
        for _ in range(300):  # the server has loaded its model
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        args = (
            f"model_version=longvid-testbed,max_frames_num=16,pass_video_url=True,base_url=http://127.0.0.1:{port}/v1"
        )
        lmms_openai = [
            "-m",
            "lmms_eval",
            "--model",
            "openai_compatible",
            "--model_args",
            args,
            "--tasks",
            "longvid_probe",
            "--include_path",
            ".",
            "--log_samples",
            "--output_path",
            str(tmp_path / "openai"),
        ]
        done = subprocess.run([sys.executable, *lmms_openai], cwd=TASK_DIR, env=env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    finally:
        server.terminate()
        server.wait(10)
    runs["openai"] = None
    scores, samples = {}, {}
    for name in runs:
        (results,) = (tmp_path / name).rglob("*_results.json")
        scores[name] = json.loads(results.read_text())["results"]["longvid_probe"]["exact_match,none"]
        (lines,) = (tmp_path / name).rglob("*_samples_longvid_probe.jsonl")
        samples[name] = sorted((s["doc_id"], s["filtered_resps"], json.dumps(s["token_counts"]))
                               for s in map(json.loads, lines.read_text().splitlines()))  # fmt: skip
    # the sample's marker falls between the 16 frames (the README's miss); the probes are right
    assert scores == {"one": 0.8, "two": 0.8, "openai": 0.8}
    assert samples["one"] == samples["two"] and len(samples["one"]) == 5

    # through the /v1 API: the same answers, the same prompt tokens
    def answers(rows):
        counts = [json.loads(c) for _, _, c in rows]
        return [
            (d, r, (c[0] if isinstance(c, list) else c)["input_tokens"])
            for (d, r, _), c in zip(rows, counts, strict=True)
        ]

    assert answers(samples["openai"]) == answers(samples["one"])
    assert samples["one"][0][1] == "purple" and all('"input_tokens"' in s[2] for s in samples["one"])
