"""`python -m engine.cli`: the `evowatch` command."""
from engine.cli import run

run()
