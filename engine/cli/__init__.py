"""The `evowatch` command line (contract: shared DESIGN.md, "Command line"): :func:`main` and :func:`run`.

The modules: ``parser`` (the argument parser, usage errors in one line), ``values`` (each option's
value checked as it is parsed), ``logs`` (the logging levels and format), ``commands`` (watch, info,
layout, export, view, demo), ``os_errors`` (an OSError in one line) and ``interrupts`` (stopping
on Ctrl-C, SIGTERM, SIGHUP or a closed pipe). They import heavy modules lazily, so ``--help``
stays fast. This package gives the names the rest of evowatch imports.
"""
from __future__ import annotations

import signal
import sys

from engine.cli.commands import COMMANDS, cmd_demo, cmd_export, cmd_info, cmd_layout, cmd_view, cmd_watch
from engine.cli.interrupts import (
    STOP_REQUESTED,
    Terminated,
    _closed_pipe,
    _exit_past_busy_threads,
    _left_when_interrupted,
    _stop_on_sigterm,
)
from engine.cli.logs import _OUR_LOGGERS, _configure_logging, log
from engine.cli.os_errors import _os_error
from engine.cli.parser import DEFAULT_ALIGNMENT, DEFAULT_ENCODER, DEMO_STEPS, build_parser, discovery_options
from engine.errors import EvowatchError
from stores.format import one_line

__all__ = ["COMMANDS", "DEFAULT_ALIGNMENT", "DEFAULT_ENCODER", "DEMO_STEPS", "STOP_REQUESTED", "Terminated",
           "_OUR_LOGGERS", "_configure_logging", "_stop_on_sigterm", "build_parser", "cmd_demo", "cmd_export",
           "cmd_info", "cmd_layout", "cmd_view", "cmd_watch", "discovery_options", "log", "main", "one_line", "run"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    STOP_REQUESTED.clear()
    restore_sigterm = _stop_on_sigterm()
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except (EvowatchError, ValueError, OSError) as exc:
        # EvowatchError names the file and the fix; ValueError comes from parse_* functions
        # ("Expected X. Got Y instead."); OSError covers a full disk or a vanished path.
        if args.verbose:  # the traceback for a bug report, then the same line and status as without -v
            log.debug("the error's traceback", exc_info=True)
        print(f"evowatch: error: {one_line(_os_error(exc, args) if isinstance(exc, OSError) else str(exc))}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # 128 + the signal, as a shell reports a process it stopped
        if left := _left_when_interrupted(args):
            print(f"evowatch: interrupted; {left}", file=sys.stderr)
        return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        restore_sigterm()


def run() -> None:
    """The ``evowatch`` command (:func:`main` returns its status instead, for callers in Python)."""
    sys.exit(_exit_past_busy_threads(main()))

