"""The docs as a contract: what they list of the code's own tables (options, log formats) is
checked against those tables, so a table that grows without its docs fails here."""
from __future__ import annotations

import argparse
from pathlib import Path

from engine import cli, trainer_logs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of its level or above."""
    level = heading.split(" ")[0]
    body = text.split(heading, 1)[1]
    ends = [i for i in (body.find("\n" + "#" * n + " ") for n in range(1, len(level) + 1)) if i >= 0]
    return body[:min(ends)] if ends else body


def test_every_option_of_every_command_is_in_its_section_of_docs_cli_md():
    doc = (DOCS / "cli.md").read_text()
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        section = _section(doc, f"## `evowatch {name}")
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        missing = sorted(o for o in options - {"--help", "--quiet", "--verbose"} if f"`{o}" not in section)
        assert not missing, f"evowatch {name}: {missing} not in docs/cli.md"


def test_docs_metrics_md_names_every_trainer_log_and_step_key_read():
    """Round AV: mmengine's ``vis_data/scalars.json`` and W&B's ``trainer/global_step`` were read
    but not listed, and the docs said "the reader reads these kinds of file"."""
    section = _section((DOCS / "metrics.md").read_text(), "## Trainer scalars")
    missing = [x for x in (trainer_logs.MMENGINE_SCALARS, *trainer_logs.STEP_KEYS) if f"`{x}`" not in section
               and f"/{x}`" not in section]
    assert not missing, f"docs/metrics.md, Trainer scalars: {missing} not named"


def _quiet_clause(text: str) -> str:
    """What a doc says ``-q`` keeps: the words after its first mention, up to ``-v``'s."""
    return text.split("`-q`", 1)[1].split("`-v`", 1)[0]


def test_quiet_keeps_warnings_as_its_help_and_the_docs_say(tmp_path, capsys):
    """Round BC: README, docs/cli.md and ``--help`` said ``-q`` keeps "only errors and alerts",
    but it keeps warnings too: a file skipped as unreadable is still said (as it should be)."""
    import numpy as np
    from PIL import Image

    from engine.cli import main

    checkpoint = tmp_path / "run" / "step_000100"
    checkpoint.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(checkpoint / f"{i:05d}.png")
    (checkpoint / "00003.png").write_bytes(b"not an image")
    assert main(["-q", "watch", str(tmp_path / "run"), "--store", str(tmp_path / "s.zarr"), "--once", "--settle", "0",
                 "--encoder", "pixels", "--no-layout", "--no-metrics"]) == 0
    err = capsys.readouterr().err
    assert "skipped step_000100/00003.png" in err and "ingested" not in err

    quiet = next(a for a in cli.build_parser()._actions if "--quiet" in a.option_strings)
    said = {"--help": quiet.help, "README.md": _quiet_clause((DOCS.parent / "README.md").read_text()),
            "docs/cli.md": _quiet_clause((DOCS / "cli.md").read_text())}
    wrong = [where for where, text in said.items() if "warnings" not in text]
    assert not wrong, f"-q keeps warnings, but {wrong} do not say so"


def test_the_streamlit_run_commands_documented_listen_where_evowatch_view_does():
    """Round BC: docs/viewer.md said ``streamlit run viewer/asgi.py -- STORE`` runs "the same" as
    ``evowatch view``, but Streamlit's own defaults listen on every network interface and send
    usage statistics: each documented command carries the two settings ``view`` passes."""
    import re

    from viewer.launch import streamlit_command

    command = streamlit_command(Path("STORE"))
    wanted = [f"{name} {command[command.index(name) + 1]}" for name in ("--server.address", "--browser.gatherUsageStats")]
    documented = re.findall(r"`(streamlit run [^`]*)`", (DOCS / "viewer.md").read_text())
    assert documented
    missing = [(line, want) for line in documented for want in wanted if want not in line]
    assert not missing, f"docs/viewer.md: {missing}"
