"""The docs as a contract: what they list of the code's own tables (options, log formats) is
checked against those tables, so a table that grows without its docs fails here."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

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


def _cells(line: str) -> list[str]:
    """A markdown table row's cells (a ``\\|`` inside a cell is no border)."""
    import re

    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _store_md_arrays() -> list[tuple[str, str]]:
    """docs/store.md's array table as (name pattern, shape and dtype cell): braces expanded,
    ``<name>`` a wildcard of one path part."""
    import re

    rows = []
    for line in _section((DOCS / "store.md").read_text(), "## Arrays").splitlines():
        if not line.startswith("| `"):
            continue
        cells = _cells(line)
        for name in re.findall(r"`([^`]+)`", cells[0]):
            head, brace, rest = name.partition("{")
            parts = [head + p.strip() for p in rest.rstrip("}").split(",")] if brace else [name]
            rows += [(p, cells[1]) for p in parts]
    return rows


@pytest.fixture(scope="module")
def full_store(tmp_path_factory) -> Path:
    """A store watched with every optional part: labels and latents, trainer losses, a skipped
    file, real and held-out references, the map and the metrics."""
    import json

    import numpy as np
    from PIL import Image

    from engine.cli import main
    from engine.hooks import save_samples

    tmp_path = tmp_path_factory.mktemp("full")
    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    for step in (100, 200, 300):
        save_samples(run, step, rng.integers(0, 256, (16, 12, 12, 3), dtype=np.uint8),
                     labels=np.arange(16) % 2, latents=rng.normal(size=(16, 4)))
    (run / "losses.jsonl").write_text("".join(json.dumps({"step": s, "loss_d": 1.0, "loss_g": 2.0}) + "\n"
                                              for s in range(0, 301, 50)))
    (run / "samples_00000400.npz").write_bytes(b"cut short")
    for name, n in (("real", 24), ("holdout", 12)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / name / f"{i:03d}.png")
    store = tmp_path / "s.zarr"
    assert main(["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels:4",
                 "--real", str(tmp_path / "real"), "--holdout", str(tmp_path / "holdout")]) == 0
    return store


def test_every_array_of_a_real_store_is_in_docs_store_md_with_its_shape_and_dtype(full_store):
    """Round BC (a new user reading a store with plain zarr): what docs/store.md lists is what a
    store holds, both ways, with the rank and dtype it says."""
    import re

    import zarr

    store = full_store
    documented = _store_md_arrays()
    patterns = [(re.compile(re.sub(r"<[^>]+>", "[^/]+", re.escape(n)) + "$"), n, cell) for n, cell in documented]
    found: dict[str, object] = {}
    groups = [("", zarr.open_group(str(store), mode="r"))]
    while groups:
        prefix, group = groups.pop()
        for name, member in group.members():
            if isinstance(member, zarr.Group):
                groups.append((f"{prefix}{name}/", member))
            else:
                found[prefix + name] = member
    undocumented = sorted(p for p in found if not any(rx.match(p) for rx, _, _ in patterns))
    assert not undocumented, f"arrays of a real store not in docs/store.md: {undocumented}"
    absent = sorted(n for n, _ in documented if "<" not in n and n not in found)
    assert not absent, f"docs/store.md names arrays a store does not hold: {absent}"

    def dtype_word(array) -> str:
        return "string" if array.dtype.kind in "TUO" else str(array.dtype)

    wrong = []
    for path, array in found.items():
        rx, name, cell = next((rx, n, c) for rx, n, c in patterns if rx.match(path))
        siblings = [n for n, c in documented if c == cell]
        dtypes = re.findall(r"\b(u?int\d+|float\d+|bool|string)\b", cell.split(")")[-1])
        said = dtypes[siblings.index(name)] if len(dtypes) == len(siblings) else dtypes[0] if len(dtypes) == 1 else None
        rank = cell.split(")")[0].count(",") + 1 - cell.split(")")[0].rstrip().endswith(",")
        if (said and said != dtype_word(array)) or (cell.startswith("(") and rank != array.ndim):
            wrong.append(f"{path}: {array.ndim}-d {dtype_word(array)}, docs say {cell}")
    assert not wrong, wrong
    assert {"samples/latent", "scalars/loss_d", "sample_metrics/near_copy", "metrics/fd"} <= set(found)
    assert zarr.open_group(str(store), mode="r").attrs["committed"]["warnings"] == 1


def test_what_is_measured_without_real_is_what_readme_and_docs_cli_md_name(tmp_path):
    """Round BC: README said "without --real only the diversity figures are measured", having
    just counted the near-duplicate share among them; it needs the real data's calibration."""
    import re

    import numpy as np

    from engine.cli import main
    from engine.hooks import save_samples
    from stores.zarr_store import StoreReader

    rng = np.random.default_rng(0)
    for step in (100, 200):
        save_samples(tmp_path / "run", step, rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8))
    store = tmp_path / "s.zarr"
    assert main(["-q", "watch", str(tmp_path / "run"), "--store", str(store), "--once", "--settle", "0",
                 "--encoder", "pixels:4", "--no-layout"]) == 0
    measured = set(StoreReader(store).step_metrics()) - {"step", "n_generated"}
    assert measured == {"vendi", "pairwise_cosine"}

    readme = (DOCS.parent / "README.md").read_text()
    sentence = readme.split("Without `--real` only", 1)[1].split(";", 1)[0]
    row = next(line for line in (DOCS / "cli.md").read_text().splitlines() if line.startswith("| `--real DIR`"))
    clause = row.split("Without it only", 1)[1].split(" are measured", 1)[0]
    for where, text in (("README.md", sentence), ("docs/cli.md", clause)):
        assert set(re.findall(r"`([a-z_]+)`", text)) == measured, f"{where}: {text!r}"


def test_the_evaluate_alerts_signature_docs_metrics_md_writes_out_is_the_functions_own():
    """Round BC: docs/metrics.md wrote ``evaluate_alerts(history, rules=DEFAULT_RULES,
    losses=None)``, without its ``names`` parameter."""
    import inspect
    import re

    from engine import alerts

    doc = (DOCS / "metrics.md").read_text()
    written = re.search(r"`evaluate_alerts\(([^)]*)\)", doc).group(1)
    assert [p.split("=")[0].strip() for p in written.split(",")] == list(inspect.signature(alerts.evaluate_alerts).parameters)


def test_info_json_keys_are_those_docs_cli_md_lists(full_store, capsys):
    """Round BC: the keys `evowatch info --json` prints, both ways, against its row in docs/cli.md."""
    import json
    import re

    from engine.cli import main

    assert main(["info", str(full_store), "--json"]) == 0
    printed = set(json.loads(capsys.readouterr().out))
    row = next(line for line in _section((DOCS / "cli.md").read_text(), "## `evowatch info").splitlines()
               if line.startswith("| `--json`"))
    cell = _cells(row)[2]
    while (bare := re.sub(r"\([^()]*\)", "", cell)) != cell:  # the keys, not what the parentheses say of them
        cell = bare
    listed = set(re.findall(r"`([a-z_]+)`", cell))
    assert printed == listed, f"printed, not listed: {sorted(printed - listed)}; listed, not printed: {sorted(listed - printed)}"


def test_docs_cli_md_gives_each_options_default_as_argparse_has_it():
    """Round BC: the default column of docs/cli.md against the parsers' own defaults (for the
    options whose default is a value; "none", "off" and "detected" are argparse's None/False)."""
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    doc = (DOCS / "cli.md").read_text()
    wrong = []
    for name, parser in sub.choices.items():
        rows = {_cells(line)[0]: _cells(line)[1] for line in _section(doc, f"## `evowatch {name}").splitlines()
                if line.startswith("| `--")}
        for action in parser._actions:
            if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
                continue
            option = action.option_strings[-1]
            cell = next(c for r, c in rows.items() if r.startswith(f"`{option} ") or r.startswith(f"`{option}`"))
            value = f"{action.default:g}" if isinstance(action.default, float) else str(action.default)
            if value not in cell:
                wrong.append(f"evowatch {name} {option}: default {value}, docs say {cell}")
    assert not wrong, wrong


def test_store_md_reading_recipes_stay_within_the_rows_counted_while_a_watch_commits(tmp_path):
    """Read while a watch writes, docs/store.md's recipes read the layout's and a per-sample
    metric's counts after the root's: a commit in between put them past it (the `current`
    recipe returned 40 layout rows beside 32 steps, and the NaN padding raised ValueError),
    seen in 2 of 136 and 1 of 105 reads of a live watch with a reader busy 0.2 s between."""
    import re

    import numpy as np
    import zarr
    from PIL import Image

    from engine.cli import main
    from engine.hooks import save_samples

    rng = np.random.default_rng(0)
    run, store = tmp_path / "run", tmp_path / "s.zarr"
    for name in ("real", "holdout"):
        (tmp_path / name).mkdir()
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / name / f"{i:03d}.png")
    watch = ["-q", "watch", str(run), "--store", str(store), "--once", "--settle", "0", "--encoder", "pixels:4",
             "--real", str(tmp_path / "real"), "--holdout", str(tmp_path / "holdout")]
    save_samples(run, 100, rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8))
    assert main(watch) == 0
    opened = []

    def open_group(path, mode):  # the reader opens the store; the watch commits and lays out a step meanwhile
        opened.append(zarr.open_group(path, mode=mode))
        save_samples(run, 200, rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8))
        assert main(watch) == 0
        return opened[-1]

    text = (DOCS / "store.md").read_text()
    recipe = re.search(r"```python\n(.*?)```", _section(text, "## Reading a store while it is written"), re.S).group(1)
    namespace: dict = {}
    exec(recipe, namespace)
    namespace["zarr"] = type("Zarr", (), {"open_group": staticmethod(open_group)})
    step, xy = namespace["current"](str(store))
    assert len(step) == 12 + 12 + 8 and len(xy) <= len(step)

    root = opened[-1]  # opened before the second commit: its count is the earlier one
    row = next(line for line in text.splitlines() if line.startswith("| `sample_metrics/<name>`"))
    count = re.search(r"`(k = [^`]+)`", row)
    pad = re.search(r"`(np\.pad\([^`]+\))`", row).group(1)
    scope = {"np": np, "n": root.attrs["committed"]["rows"], "x": root["sample_metrics/nn_train_dist"]}
    exec(count.group(1) if count else 'k = x.attrs["committed_rows"]', scope)
    assert len(eval(pad, scope)) == scope["n"]


def test_the_guide_a_store_holds_caps_the_layout_rows_at_the_committed_rows_as_store_md_does(tmp_path):
    """The reading guide written into every store (root attrs["description"]) is a plain-zarr
    reader's only docs: it said to read layout rows up to layout.attrs['committed_rows'], which a
    commit between the two reads puts past the root's rows; docs/store.md's recipe caps it."""
    import numpy as np
    import zarr

    from stores.zarr_store import StoreWriter

    recipe = (DOCS / "store.md").read_text()
    assert 'min(root["layout"].attrs["committed_rows"], n)' in recipe
    path = tmp_path / "s.zarr"
    with StoreWriter(path, {"identity": "test", "dim": 4, "device": "cpu"}, thumbnail_size=4) as store, \
            store.checkpoint(100, "run/step_100", "h100") as tx:
        tx.add(np.eye(4, dtype=np.float32), [0, 1, 2, 3], [None] * 4, np.zeros((4, 4, 4, 3), np.uint8),
               [f"{i}.png" for i in range(4)])
    guide = zarr.open_group(path, mode="r").attrs["description"]
    assert "min(layout.attrs['committed_rows'], the committed rows)" in guide


def test_the_examples_commands_name_no_file_of_the_checkout(tmp_path, monkeypatch):
    """Round BO (a new user with the wheel installed, in a folder of their own): examples/README.md
    said `python examples/offline_analysis.py …` and `--sampler examples/lightning_callback.py:…`,
    paths into the checkout: "can't open file", "no such sampler file". Each script and sampler it
    or an example's docstring names is found from any folder (the module forms: `python -m
    examples.offline_analysis`, `--sampler examples.lightning_callback:sample_checkpoint`)."""
    import importlib.util
    import re

    examples = DOCS.parent / "examples"
    text = "\n".join(p.read_text() for p in [examples / "README.md", *sorted(examples.glob("*.py"))])
    scripts = re.findall(r"python (?:-m )?([\w./-]+)", text)
    samplers = [spec.rsplit(":", 1)[0] for spec in re.findall(r"--sampler ([\w./-]+:\w+)", text)]
    assert len(scripts) >= 4 and len(samplers) >= 3, (scripts, samplers)
    monkeypatch.chdir(tmp_path)  # away from the checkout
    lost = [name for name in scripts + samplers if not (
        Path(name).is_file() if name.endswith(".py") else importlib.util.find_spec(name) is not None)]
    assert not lost, f"{lost}: not found outside the checkout; name the module (examples.NAME) instead"


def test_every_option_docs_cli_md_lists_for_a_command_is_one_it_takes():
    """The other way round from the first test: a row of a command's tables naming an option the
    command does not take (renamed, removed, or listed under the wrong command) fails here."""
    import re

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    doc = (DOCS / "cli.md").read_text()
    wrong = []
    for name, parser in sub.choices.items():
        options = {o for a in parser._actions for o in a.option_strings}
        for line in _section(doc, f"## `evowatch {name}").splitlines():
            if line.startswith("| `-"):
                wrong += [f"evowatch {name} {o}" for o in re.findall(r"`(--?[a-z][\w-]*)", _cells(line)[0])
                          if o not in options]
    assert not wrong, f"docs/cli.md lists options the commands do not take: {wrong}"


def _script_commands(text: str):
    """(script path, its flags) for each ``benchmarks/NAME.py …`` or ``python -m examples.NAME …``
    command in ``text``: the words after it up to the end of its line, a comment or a comma."""
    import re

    command = re.compile(r"(?:\b(benchmarks|examples)/(\w+)\.py|-m (benchmarks|examples)\.(\w+))([^\n`|#;)]*)")
    for m in command.finditer(text):
        folder, name = m.group(1) or m.group(3), m.group(2) or m.group(4)
        yield Path(folder) / f"{name}.py", re.findall(r"(?<![\w-])--[a-z][\w-]*", m.group(5).split(",")[0])


def test_every_flag_a_documented_benchmark_or_example_command_gives_is_one_the_script_takes():
    """Round BW: the docs quote 180 or so flags of benchmark and example commands
    (`benchmarks/memorisation_null.py --sizes 8 16 32 --holdout 10 20 100`); a flag renamed in the
    script left the command failing with argparse's "unrecognized arguments". Each is checked
    against the script's own text (its parser names it in quotes)."""
    root = DOCS.parent
    sources = [root / "README.md", *sorted(DOCS.glob("*.md")), root / "examples" / "README.md",
               *sorted((root / "examples").glob("*.py")), *sorted((root / "benchmarks").glob("*.py"))]
    checked, wrong = 0, []
    for source in sources:
        for script, flags in _script_commands(source.read_text()):
            code = (root / script).read_text() if (root / script).is_file() else ""
            wrong += [f"{source.name}: {script} {flag}" for flag in flags
                      if f'"{flag}"' not in code and f"'{flag}'" not in code]
            checked += len(flags)
    assert checked >= 100, checked  # the commands are still found
    assert not wrong, f"flags the scripts do not take: {wrong}"


def _quoted_settings(text: str) -> list[tuple[str, str]]:
    """Each ``name = value`` a doc writes in backticks, value a number (``10%`` is 0.1)."""
    import re

    return re.findall(r"`([A-Za-z_]\w*) = (-?[\d.]+(?:e-?\d+)?%?)`", text)


def test_every_setting_docs_metrics_md_quotes_as_name_equals_value_is_the_codes():
    """Round BW: docs/metrics.md quotes the rules' thresholds as `collapse_max_drop = 0.5`,
    `warmup = 2`, `COPY_SEED = 0`; an `AlertRules` default or a module constant changed without
    its docs, or renamed, fails here. Every `UPPER_CASE` constant the page names must exist too."""
    import dataclasses
    import importlib
    import re

    from engine.alerts import settings

    known: dict[str, object] = {f.name: f.default for f in dataclasses.fields(settings.AlertRules)}
    for package in ("metrics", "alerts"):
        for module in sorted((DOCS.parent / "engine" / package).glob("*.py")):
            names = vars(importlib.import_module(f"engine.{package}.{module.stem}"))
            known.update({k: v for k, v in names.items() if re.fullmatch(r"[A-Z][A-Z0-9_]+", k)})
    doc = (DOCS / "metrics.md").read_text()
    quoted = _quoted_settings(doc)
    assert len(quoted) >= 15, quoted
    wrong = []
    for name, value in quoted:
        said = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        if name in known and known[name] != pytest.approx(said):
            wrong.append(f"{name}: docs say {value}, the code has {known[name]}")
    assert not wrong, wrong
    code = "\n".join(p.read_text() for p in (DOCS.parent / "engine").rglob("*.py"))
    constants = {c for c in re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", doc) if not c.startswith("EVOWATCH_")}
    missing = sorted(c for c in constants if not re.search(rf"^{c}\b.*=", code, re.M))
    assert not missing, f"docs/metrics.md names constants the code does not define: {missing}"


def test_value_range_help_names_every_input_docs_cli_md_says_it_reads():
    """Round BW: `--value-range` also sets a float image's range (a 32-bit TIFF: README,
    docs/cli.md), but `--help` named only "tensor files and sampler outputs"."""
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices["watch"]._actions if "--value-range" in a.option_strings)
    row = next(line for line in (DOCS / "cli.md").read_text().splitlines() if line.startswith("| `--value-range"))
    for kind in ("tensor files", "float images", "sampler"):
        assert kind in row and kind in action.help, kind
