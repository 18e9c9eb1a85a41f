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
