"""Help and docs in step: every option of every command is documented (in the doc the README
points to for that command), every command and option the docs' code blocks name exists, and
every documented command is run by a test (at small size) or listed here as long-running, with
the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from longvid.cli import app
from longvid.models.families import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# where each command group is documented (default: docs/usage.md)
DOC_FOR = {"info": "README.md", "frames": "README.md", "synth": "README.md", "testbed": "README.md",
           "eval": "docs/evals.md", "encoder": "docs/encoder.md"}  # fmt: skip

# the test that runs each documented command as written (sizes reduced), or why none does
RUN_BY = {
    "info": "tests/test_cli.py::test_info_json",
    "frames": "tests/test_cli.py::test_frames_npz_and_sheet",
    "synth": "tests/test_cli.py::test_synth_writes_video_and_truth",
    "ask": "tests/test_testbed.py::test_readme_main_command_answers_the_sample",
    "models": "tests/test_docs.py::test_models_lists_every_family",
    "inspect": "tests/test_real_checkpoints.py::test_cli_inspect_and_prepare_on_a_real_checkpoint",
    "prepare": "tests/test_real_checkpoints.py::test_cli_inspect_and_prepare_on_a_real_checkpoint",
    "tiny": "tests/test_cli.py::test_tiny_then_ask",
    "serve": "tests/test_web.py::test_page_upload_ask_answer_and_strip",
    "profile": "tests/test_memory.py::test_profile_cli_table_json_plot",
    "probe": "tests/test_probes.py::test_probe_cli_writes_table_json_and_heatmap",
    "eval": "tests/test_evals.py::test_two_process_torchrun_equals_one_process",
    "testbed card": "tests/test_testbed.py::test_card_command",
    "encoder synth": "tests/test_encoder_train.py::test_the_documented_walkthrough_runs_at_small_size",
    "encoder train": "tests/test_encoder_train.py::test_the_documented_walkthrough_runs_at_small_size",
    "encoder eval": "tests/test_encoder_train.py::test_the_documented_walkthrough_runs_at_small_size",
    "encoder caption-lm": "tests/test_encoder_train.py::test_the_documented_walkthrough_runs_at_small_size",
    "encoder caption-train": "tests/test_encoder_train.py::test_the_documented_walkthrough_runs_at_small_size",
    "encoder caption": "tests/test_encoder_train.py::test_the_documented_walkthrough_runs_at_small_size",
}
LONG_RUNNING = {
    "testbed train": "trains the bundled model: 57-64 min on 2 cores (tests/test_testbed.py runs the recipe's "
    "two stages at a few steps: test_two_stage_recipe)",
}


def commands() -> dict[str, object]:
    """'ask', 'encoder train', ... -> the click command behind it."""
    out = {}

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            out[" ".join(path)] = cmd

    walk(typer.main.get_command(app), ())
    return out


def options(cmd) -> set[str]:
    return {o for p in cmd.params if p.param_type_name == "option" for o in p.opts} | {"--help"}


def documented_command_lines() -> list[tuple[str, str]]:
    """(doc, command line) for every `longvid ...` line in a fenced block, continuations joined."""
    found = []
    for doc in DOCS:
        inside, pending = False, ""
        for line in doc.read_text().splitlines():
            if line.lstrip().startswith("```"):
                inside = not inside
                continue
            if not inside:
                continue
            line = pending + line.split(" # ")[0].strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            m = re.search(r"(?:^|-m )longvid (.*)", line)
            if m and not line.startswith("python -m longvid."):
                found.append((doc.relative_to(ROOT).as_posix(), m.group(1)))
    return found


def command_of(rest: str, known: dict) -> str | None:
    words = rest.split()
    for n in (2, 1):
        if " ".join(words[:n]) in known:
            return " ".join(words[:n])
    return None


def test_every_option_of_every_command_is_documented():
    missing = []
    for path, cmd in commands().items():
        doc = DOC_FOR.get(path.split()[0], "docs/usage.md")
        text = (ROOT / doc).read_text()
        missing += [
            f"{path} {o} (in {doc})" for o in sorted(options(cmd) - {"--help"}) if o.startswith("--") and o not in text
        ]
    assert not missing, "options not documented:\n" + "\n".join(missing)


def test_every_documented_command_and_option_exists():
    known = commands()
    wrong = []
    for doc, rest in documented_command_lines():
        path = command_of(rest, known)
        if path is None:
            wrong.append(f"{doc}: no command in `longvid {rest}`")
            continue
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
            if opt not in options(known[path]):
                wrong.append(f"{doc}: `longvid {path}` has no {opt}")
    assert not wrong, "\n".join(wrong)


def test_every_documented_command_is_run_by_a_test_or_said_to_be_long():
    known = commands()
    paths = {command_of(rest, known) for _, rest in documented_command_lines()} - {None}
    unaccounted = sorted(p for p in paths if p not in RUN_BY and p not in LONG_RUNNING)
    assert not unaccounted, f"documented commands no test runs: {unaccounted}"
    for path, node in RUN_BY.items():
        file, name = node.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / file).read_text(), re.M), f"{path}: {node} does not exist"


@pytest.mark.parametrize("family", FAMILIES)
def test_models_lists_every_family(capsys, family):
    """`longvid models`, `longvid tiny --help`, docs/models.md and the README name every
    family of the table (``longvid.models.families``, read from the family files)."""
    from tests.support import run

    code, out, _ = run(capsys, "models")
    assert code == 0 and f"| {family} |" in out
    code, out, _ = run(capsys, "tiny", "--help")
    assert code == 0 and family in out
    assert f"`{family}`" in (ROOT / "docs" / "models.md").read_text(), f"docs/models.md lacks {family}"


def test_version(capsys):
    from importlib.metadata import version

    from tests.support import run

    assert run(capsys, "--version")[:2] == (0, f"longvid {version('longvid')}\n")


@pytest.mark.parametrize(
    ("results_dir", "frames"),
    [
        ("docs/results/reduce", "256"),
        ("docs/results/budgets", "16,64,256"),
        ("docs/results/positions", "64"),
        ("docs/results/positions", "256"),
    ],
)
def test_reduction_tables_in_results_doc_are_the_scripts_output(results_dir, frames):
    """The token-reduction tables in docs/results.md are what scripts/reduce_table.py prints
    from the committed probe JSON: a hand edit or a re-run without updating the doc fails."""
    import subprocess
    import sys

    printed = subprocess.run(
        [sys.executable, str(ROOT / "scripts/reduce_table.py"), str(ROOT / results_dir), "--frames", frames],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed.count("\n") >= 5  # header, rule and at least four methods
    assert printed in (ROOT / "docs/results.md").read_text()


def test_the_qwen_budget_table_is_the_scripts_output(hub_dirs):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "qwen_budgets.py"), str(hub_dirs["qwen2_5_vl"])],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert out in (ROOT / "docs" / "models.md").read_text()
    assert "| 768 | 644x336 | 276 | 105,984 |" in out
