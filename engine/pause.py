"""The tiny helper a training loop calls, and the on-alert actions evowatch takes.

Standard library only, so a trainer can import it cheaply. On an alert, evowatch writes
``RUN_DIR/EVOWATCH_PAUSE`` holding the alerts as JSON (:func:`write_pause`); the trainer
checks it between steps::

    from engine.pause import wait_if_paused
    for step in range(n_steps):
        wait_if_paused(run_dir)      # blocks while RUN_DIR/EVOWATCH_PAUSE exists
        ...

With several processes (``torchrun``, ``accelerate launch``) every rank calls :class:`PauseGate`'s
``wait()`` instead, so all pause at the same step. Delete the file (or call :func:`clear_pause`) to resume. ``evowatch watch --on-alert CMD``
runs ``CMD`` through :func:`run_on_alert` with the alert in environment variables, one
alert at a time beside the watch (:class:`AlertCommands`).
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger(__name__)

#: Name of the pause file inside the run directory.
PAUSE_FILE = "EVOWATCH_PAUSE"
#: Seconds an on-alert command may run before it is killed.
ON_ALERT_TIMEOUT_S = 60.0


def _alert_dict(alert: Any) -> dict[str, Any]:
    from stores.format import json_number  # here: the trainer's side of this file is standard library only

    if isinstance(alert, Mapping):
        d = dict(alert)
    else:
        d = {k: getattr(alert, k) for k in ("step", "rule", "value", "message")}
    missing = {"step", "rule", "value", "message"} - set(d)
    if missing:
        raise ValueError(f"Expected an alert with step, rule, value and message. Got it without {sorted(missing)} instead.")
    return {**d, "value": json_number(d["value"])}


def pause_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / PAUSE_FILE


def _pause_record(alerts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The pause file's JSON: the alerts of one evaluation under ``"alerts"``, and, for readers
    of the one-alert format, ``step``/``rule``/``value``/``message`` at the top: the rules
    joined with ", " ("collapse, fd_rising"), the messages with "; ", the first one's value."""
    if not alerts:
        raise ValueError("Expected at least one alert to pause on. Got none instead.")
    return {"step": alerts[0]["step"], "rule": ", ".join(str(a["rule"]) for a in alerts),
            "value": alerts[0]["value"], "message": "; ".join(str(a["message"]) for a in alerts),
            "alerts": list(alerts)}


def _pause_text(alerts: Sequence[Any]) -> str:
    return json.dumps(_pause_record([_alert_dict(a) for a in alerts]), default=float) + "\n"


def write_pause(run_dir: str | os.PathLike, alerts: Any) -> Path:
    """Write the pause file atomically (temporary file, then replace) with the JSON of one
    alert or of a list of alerts (all that fired at one step: the pause names every one)."""
    path = pause_path(run_dir)
    tmp = path.with_name(f".{PAUSE_FILE}.{os.getpid()}.partial")
    text = _pause_text(alerts if isinstance(alerts, (list, tuple)) else [alerts])
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def move_pause(run_dir: str | os.PathLike, moved: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> bool:
    """Put each ``(old, new)`` alert's new one in the pause file in place of the old (a checkpoint renamed to
    another step, its alert moved with it: the file named the old step). Only in a file naming the old alert
    word for word (step, rule, message: the one evowatch wrote for it, not a user's own); a file deleted
    meanwhile (the trainer resumed) is not made again, and the file keeps its time (when the pause was asked).
    True if it was rewritten."""
    record = read_pause(run_dir)
    if record is None:
        return False
    new = {(a["step"], a["rule"], a["message"]): b for a, b in moved}
    alerts = [new.get((a.get("step"), a.get("rule"), a.get("message")), a) for a in record["alerts"]]
    if alerts == record["alerts"]:
        return False
    try:
        with open(pause_path(run_dir), "r+") as file:  # not a replace: that recreated a file deleted since the read
            stat = os.fstat(file.fileno())
            file.write(_pause_text(alerts))
            file.truncate()
        os.utime(pause_path(run_dir), ns=(stat.st_atime_ns, stat.st_mtime_ns))
    except FileNotFoundError:
        return False
    return True


def pause_is_users(run_dir: str | os.PathLike) -> bool:
    """Whether the pause file there is the user's own, not one evowatch wrote (JSON with an alert's
    step, rule, value and message): a new alert keeps it, as the trainer waits on it anyway
    (`echo "holding for eval" > EVOWATCH_PAUSE` was replaced by the alert's JSON)."""
    try:
        record = json.loads(pause_path(run_dir).read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):  # not JSON (a note), or not to be read: not evowatch's to replace
        return True
    return not (isinstance(record, dict) and {"step", "rule", "value", "message"} <= record.keys())


def evowatch_should_pause(run_dir: str | os.PathLike) -> bool:
    """True while ``RUN_DIR/EVOWATCH_PAUSE`` exists."""
    return pause_path(run_dir).exists()


def read_pause(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What paused the run, or None (also None for an unreadable file): ``step``, ``rule``
    (every rule, joined with ", "), ``value``, ``message`` and ``alerts``, the list of the
    alerts themselves (also for a file in the older one-alert format)."""
    try:
        record = json.loads(pause_path(run_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):  # a pause written by hand (`echo 1 > EVOWATCH_PAUSE`) crashed the trainer
        return None
    alerts = record.get("alerts")
    if not (isinstance(alerts, list) and all(isinstance(a, dict) for a in alerts)):  # the older one-alert
        # format, or edited by hand (`"alerts": null` crashed the ALERT WITHDRAWN line)
        record["alerts"] = [{k: record.get(k) for k in ("step", "rule", "value", "message")}]
    return record


def _written(run_dir: str | os.PathLike) -> str | None:
    """When the pause file was written (local time, to the minute), or None without one."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(pause_path(run_dir).stat().st_mtime))
    except OSError:
        return None


def pause_left(run_dir: str | os.PathLike) -> str | None:
    """What a watch says while the pause file is there, as it ends (and as a live one starts): the
    file outlives the watch, so a trainer started in the run later, the run finished or not, waits on
    it at once (evowatch cannot tell whether a trainer runs there). None without the file."""
    path = pause_path(run_dir)
    if (written := _written(run_dir)) is None:
        return None
    record = read_pause(run_dir) or {}
    what = f"step {record['step']} [{record['rule']}], " if record.get("rule") else ""
    return (f"{path} is there ({what}written {written}): a trainer checking it waits, one started there later "
            "too, until it is deleted")


def clear_pause(run_dir: str | os.PathLike) -> None:
    """Remove the pause file (resume)."""
    pause_path(run_dir).unlink(missing_ok=True)


def pause_message(run_dir: str | os.PathLike) -> str:
    """The line a paused trainer logs: what paused it, when (a file left from an earlier run's alert
    held a new run at its first step in the name of an alert it never raised), and how to resume."""
    alert = read_pause(run_dir) or {}
    why = f" ({alert['rule']}): {alert.get('message', '')}" if alert.get("rule") else ""  # `echo {} > ...`: no alert
    written = _written(run_dir)
    when = f"Written {written}; delete" if written else "Delete"  # None: deleted meanwhile
    return f"evowatch paused training{why.rstrip(': ')}. {when} {pause_path(run_dir)} to resume."


class PauseCheckError(RuntimeError):
    """The trainer could not look for the pause file (a run folder it may not read, also one made so
    mid-wait): one line naming the file and the fix, not PermissionError's traceback, nor training on.
    A :class:`PauseGate` raises it on every rank alike (raised on rank 0 alone, the other ranks waited
    in the broadcast until the group's timeout)."""


#: Who :class:`PauseCheckError` asks to read the folder, and what to give a folder it can read.
_TRAINER, _GATE = ("the trainer", "wait_if_paused"), ("the trainer (rank 0 of several)", "PauseGate")


def _looked(run_dir: str | os.PathLike, who: tuple[str, str] = _TRAINER) -> bool:
    """:func:`evowatch_should_pause`, a folder that cannot be looked in raised as :class:`PauseCheckError`."""
    try:
        return evowatch_should_pause(run_dir)
    except OSError as exc:  # Path.exists raises all but "not there"
        raise PauseCheckError(f"evowatch: cannot look for {pause_path(run_dir)} ({exc.strerror or exc}): let "
                              f"{who[0]} read {run_dir}, or give {who[1]} a folder it can read") from exc


def wait_if_paused(run_dir: str | os.PathLike, poll_s: float = 5.0, timeout_s: float | None = None) -> bool:
    """Block while the run is paused; return True if it waited at all.

    Logs the alert once at WARNING. With ``timeout_s`` it returns after that long even if
    still paused (then :func:`evowatch_should_pause` is still True). A run folder it cannot
    look in raises :class:`PauseCheckError`.
    """
    return _wait_while_paused(run_dir, poll_s, timeout_s, _TRAINER)


def _wait_while_paused(run_dir: str | os.PathLike, poll_s: float, timeout_s: float | None, who: tuple[str, str]) -> bool:
    if not _looked(run_dir, who):
        return False
    log.warning("%s", pause_message(run_dir))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while _looked(run_dir, who):
        if deadline is not None and time.monotonic() >= deadline:
            break
        time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))  # not a poll past it
    return True


#: What :class:`PauseGate` shares from rank 0: the index of the folder holding the pause file (-1: none),
#: the calls until rank 0 looks again, and why rank 0 could not look (None: it could).
Decision = tuple[int, int, str | None]


def _process_group_share() -> Callable[[Callable[[], Decision]], Decision] | None:
    """Rank 0's decision sent to every rank of torch.distributed's default process group, or None
    outside one (torch not even imported: this file stays standard library only)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None

    def share(look: Callable[[], Decision]) -> Decision:
        decision = [look() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(decision, src=0)  # on the backend's own device (NCCL: the current GPU)
        return decision[0]

    return share


class PauseGate:
    """:func:`wait_if_paused` for a run of several processes (``torchrun``, ``accelerate launch``,
    a hand-written DDP loop), which every rank calls at the same point of each step::

        gate = PauseGate(run_dir)
        for step in range(n_steps):
            gate.wait()              # every rank pauses at the same step while RUN_DIR/EVOWATCH_PAUSE exists

    Each rank looking for the file itself, one written between two ranks' looks held one rank in the
    pause and the others in the gradient all-reduce until the process group's timeout ended the run.
    Here rank 0 looks, about every ``check_every_s`` seconds (at a call it names in advance, paced by
    the steps' speed), and every rank follows its answer (one broadcast a look); paused ranks sleep
    ``poll_s`` and ask again, all at once, so a pause outlasts the group's timeout whatever ``poll_s`` (gloo,
    2 ranks: ``poll_s`` 10 s under a 3 s timeout trained on after a 15 s pause).
    Without a process group (one process) each call is :func:`wait_if_paused`. ``run_dir`` may be
    several folders (a file in any pauses); ``share`` replaces torch.distributed's broadcast (a
    Lightning strategy's): it calls ``look`` on rank 0 alone and returns its result on every rank.
    """

    def __init__(self, run_dir: str | os.PathLike | Sequence[str | os.PathLike], check_every_s: float = 1.0,
                 poll_s: float = 5.0, share: Callable[[Callable[[], Decision]], Decision] | None = None) -> None:
        dirs = [run_dir] if isinstance(run_dir, (str, os.PathLike)) else list(run_dir)
        self.run_dirs = [Path(d) for d in dirs]
        self.check_every_s, self.poll_s, self.share = check_every_s, poll_s, share
        self._calls, self._due = 0, 0  # calls made, and the one rank 0 looks at: the same on every rank
        self._mark: tuple[float, int] | None = None  # rank 0's clock and call count at its last look
        self._paused_at: int = -1  # rank 0's last reading, to log a pause once

    def _paused(self) -> int:
        return next((i for i, run_dir in enumerate(self.run_dirs) if _looked(run_dir, _GATE)), -1)

    def _look(self) -> Decision:
        """Rank 0's reading: the folder holding the pause file (-1: none), the calls until its next look
        (as many as fit in ``check_every_s`` at the pace since the last one), and why it could not look."""
        try:
            paused = self._paused()
        except PauseCheckError as exc:
            return -1, 1, str(exc)
        if paused >= 0 and self._paused_at < 0:
            log.warning("%s", pause_message(self.run_dirs[paused]))
        now, mark = time.monotonic(), self._mark
        self._mark, self._paused_at = (now, self._calls), paused
        if mark is None:  # no pace yet: timed from the gate's making, the first look put the next 40,000 calls off
            return paused, 1, None
        return paused, max(1, int(self.check_every_s * (self._calls - mark[1]) / max(now - mark[0], 1e-6))), None

    def wait(self) -> bool:
        """Block while the run is paused, every rank alike; return True if it waited at all."""
        share = self.share or _process_group_share()
        if share is None:
            waited = False
            while (paused := self._paused()) >= 0:  # another folder's file may appear meanwhile
                waited = _wait_while_paused(self.run_dirs[paused], self.poll_s, None, _GATE) or waited
            return waited
        self._calls += 1
        if self._calls < self._due:
            return False
        paused, every = self._shared(share)
        waited = paused >= 0
        while paused >= 0:  # short collectives, each well within the process group's timeout
            time.sleep(self.poll_s)
            paused, every = self._shared(share)
        self._due = self._calls + every
        return waited

    def _shared(self, share: Callable[[Callable[[], Decision]], Decision]) -> tuple[int, int]:
        """Rank 0's decision on every rank; its failure to look raised on every rank alike."""
        paused, every, failed = share(self._look)
        if failed is not None:
            raise PauseCheckError(failed)
        return paused, every


def alert_env(alert: Any) -> dict[str, str]:
    """``EVOWATCH_STEP``, ``EVOWATCH_RULE``, ``EVOWATCH_VALUE``, ``EVOWATCH_MESSAGE``."""
    d = _alert_dict(alert)
    return {
        "EVOWATCH_STEP": str(int(d["step"])),
        "EVOWATCH_RULE": str(d["rule"]),
        "EVOWATCH_VALUE": "nan" if d["value"] is None else repr(float(d["value"])),
        "EVOWATCH_MESSAGE": str(d["message"]),
    }


#: Words a shell runs itself (POSIX sh's, dash's and bash's builtins and keywords): no program to look for;
#: one left out was said to be "no such program" (`readonly X=1; notify.sh`, `local`, `shift`).
_SHELL_WORDS = frozenset("""
    . : [ [[ ! { ( alias bg break builtin case cd command continue declare echo eval exec exit export false fc fg
    for function getopts hash if jobs kill let local printf pwd read readonly return select set shift source test
    time times trap true type typeset ulimit umask unalias unset until wait while
""".split())


def _is_assignment(word: str) -> bool:
    return "=" in word and word.split("=", 1)[0].isidentifier()


def missing_program(cmd: str) -> str | None:
    """The program an ``--on-alert`` command starts with when it is not there (not on PATH, or a
    path to no executable file), else None (also when the shell's syntax hides it): said when the
    watch starts, ``--on-alert nosuchcommand`` failed only at the first alert, when it was needed."""
    import shlex
    import shutil

    try:
        words = shlex.split(cmd)
    except ValueError:  # an unclosed quote: the shell says so at the first alert
        return None
    assigned = {w.split("=", 1)[0] for w in itertools.takewhile(_is_assignment, words)}  # VAR=value first
    words = [w for w in words if not _is_assignment(w)][:1]
    if "PATH" in assigned:  # `PATH=~/bin:$PATH notify.sh`: looked up on the PATH it sets, which may hold it
        return None
    if not words or words[0] in _SHELL_WORDS or any(c in words[0] for c in "$`|&;<>(){}*?~#"):
        return None
    program = words[0]
    if "/" in program:
        return None if os.path.isfile(program) and os.access(program, os.X_OK) else program
    return None if shutil.which(program) else program


def run_on_alert(
    cmd: str, alert: Any, timeout_s: float = ON_ALERT_TIMEOUT_S, cwd: str | os.PathLike | None = None,
    cancel: threading.Event | None = None, where: Mapping[str, str] | None = None,
) -> int | None:
    """Run the user's ``--on-alert`` command (through the shell: the user wrote it) with
    the alert in the environment. Never raises for the command's sake: a non-zero exit,
    a timeout or a failure to start is logged and returned as the exit code or None; so is
    ``cancel`` set meanwhile (the watch stopped), which kills it without a word. ``where``:
    more of its environment (the store and run, :meth:`AlertCommands`)."""
    env = {**os.environ, **(where or {}), **alert_env(alert)}
    what = f"on-alert command for step {env['EVOWATCH_STEP']} [{env['EVOWATCH_RULE']}]"  # 19 alike lines of a backlog
    # stderr into a file, not a pipe: a job the command leaves running (`notify.sh &`) kept a
    # pipe open, so the watch waited for it, then killed it at the timeout
    with tempfile.TemporaryFile("w+", errors="replace") as err:  # a command's Latin-1 stderr killed the thread
        try:
            proc = subprocess.Popen(cmd, shell=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, text=True,
                                    start_new_session=True)  # own process group: a timeout kills it all
        except OSError as exc:
            log.warning("%s could not start (%s): %s", what, exc, cmd)
            return None
        try:
            if not _wait(proc, timeout_s, cancel):
                _kill_group(proc)
                return None
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            log.warning("%s timed out after %.0f s and was killed: %s", what, timeout_s, cmd)
            return None
        except BaseException:  # the watch stopped (Ctrl-C, SIGTERM): the command does not outlive it
            _kill_group(proc)
            raise
        if proc.returncode != 0:
            err.seek(0)
            said = _last_line(err.read())
            log.warning("%s exited %d: %s%s", what, proc.returncode, cmd, f"; stderr: {said}" if said else "")
    return proc.returncode


def _last_line(text: str, most: int = 300) -> str:
    """A failed command's last line of stderr, the one that names the error (a Python
    traceback's exception): its last 500 characters began mid-word, newlines written ``\\n``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][-most:] if lines else ""


def _wait(proc: subprocess.Popen, timeout_s: float, cancel: threading.Event | None) -> bool:
    """Wait for ``proc`` (``TimeoutExpired`` past ``timeout_s``); False once ``cancel`` is set."""
    end = time.monotonic() + timeout_s
    while cancel is not None and not cancel.is_set():
        try:
            proc.wait(timeout=max(0.0, min(0.1, end - time.monotonic())))
            return True
        except subprocess.TimeoutExpired:
            if time.monotonic() >= end:
                raise
    if cancel is not None:
        return False
    proc.wait(timeout=timeout_s)
    return True


class AlertCommands:
    """The ``--on-alert`` command, run for each alert in a thread beside the watch, one at a
    time in the alerts' order. Run in line, a slow notifier (25 s) held every new checkpoint
    back as long, and a hung one for its 60 s at each alert (round AJ)."""

    def __init__(self, cmd: str, timeout_s: float = ON_ALERT_TIMEOUT_S, store: str | os.PathLike | None = None,
                 run_dir: str | os.PathLike | None = None) -> None:
        self.cmd, self.timeout_s = cmd, timeout_s
        # where the alert was raised, as absolute paths (a hook reading the store hard-coded its path)
        self.where = {key: os.path.abspath(path) for key, path in (("EVOWATCH_STORE", store),
                                                                   ("EVOWATCH_RUN_DIR", run_dir)) if path is not None}
        self._alerts: queue.Queue = queue.Queue()
        self._left: collections.deque = collections.deque()  # the alerts submitted whose command has not ended
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, alert: Any) -> None:
        """Run the command for ``alert`` once those before it have run."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="evowatch-on-alert", daemon=True)
            self._thread.start()
        self._left.append(alert)
        self._alerts.put(alert)

    def _run(self) -> None:
        while (alert := self._alerts.get()) is not None:
            try:
                if not self._cancel.is_set():
                    run_on_alert(self.cmd, alert, self.timeout_s, cancel=self._cancel, where=self.where)
            except Exception as exc:  # never the thread's end: the commands after it, and --once waiting on them, hung
                log.warning("on-alert command failed (%s: %s): %s", type(exc).__name__, exc, self.cmd)
            finally:
                self._left.popleft()
                self._alerts.task_done()
        self._alerts.task_done()  # the end's None

    def finish(self) -> None:
        """Wait for the commands left to run (each up to its timeout): ``--once`` ends once
        its alerts' commands have run."""
        if self._alerts.unfinished_tasks:
            log.info("waiting for %d --on-alert command%s to end", self._alerts.unfinished_tasks,
                     "" if self._alerts.unfinished_tasks == 1 else "s")
        self._alerts.join()

    def stop(self) -> None:
        """The watch stopped: the command under way is killed, those not started are not run
        (said, naming their alerts: a later watch does not act on a stored alert again). The
        commands run in their own process groups, which outlived the watch."""
        from stores.format import listed  # here: the trainer's side of this file is standard library only

        left = [_alert_dict(alert) for alert in list(self._left)]  # one C-level copy: the thread pops beside it
        self._cancel.set()
        if left:
            log.warning("--on-alert: %d command%s not run to the end (the watch stopped), for %s; a later watch does "
                        "not run %s again: %s", len(left), "" if len(left) == 1 else "s",
                        listed([f"step {a['step']} [{a['rule']}]" for a in left]), "it" if len(left) == 1 else "them",
                        self.cmd)
        self._alerts.join()
        if self._thread is not None:  # its end, not a thread left blocked on the queue
            self._alerts.put(None)
            self._thread.join()
            self._thread = None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
