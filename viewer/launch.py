"""Start the Streamlit viewer on a store: what ``evowatch view STORE`` runs."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from stores.format import one_line
from viewer.store_path import awaited, refusal

APP = Path(__file__).with_name("asgi.py")  # viewer/app.py served with a preload header


def streamlit_command(store: Path, host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The ``streamlit run`` command line (headless, no usage statistics, no file watcher)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true", "--server.address", host, "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--client.toolbarMode", "viewer", "--", str(store)]


def listen_error(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now, or None. Checked before the address is
    announced: Streamlit would fail after our announcement, print its own error and exit 1.
    SO_REUSEADDR as the server sets it, so a port in TIME_WAIT counts as free."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} is in use (another viewer?); choose another with --port"
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port"
    return None


def launch(store: Path, host: str = "127.0.0.1", port: int = 8501) -> int:
    """Validate ``store``, start the viewer, print its address, and return its exit code.

    A store that does not exist yet (absent, or an empty folder) is waited for: the page
    says so and shows the store once ``evowatch watch`` creates it. A path that cannot
    become a store (a file, a foreign or unsupported store, a folder with other contents, a
    missing parent folder) or a port already in use is refused before Streamlit starts,
    with one line on stderr and exit code 2. Ctrl-C stops the server and returns 0.
    """
    store = Path(store).expanduser().resolve()
    problem = refusal(store) or listen_error(host, port)
    if problem:
        print(one_line(f"evowatch: error: {problem}"), file=sys.stderr)  # a path named with a newline: one line
        return 2
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown  # an IPv6 address in a URL: http://::1:8501 is none
    waiting = " (no store there yet: the page waits for it)" if awaited(store) else ""
    print(one_line(f"evowatch viewer for {store}{waiting}: http://{shown}:{port}  (Ctrl-C to stop)"), flush=True)
    env = dict(os.environ)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    proc = subprocess.Popen(streamlit_command(store, host, port), env=env)

    def _stop(signum: int, frame: object) -> None:  # SIGTERM: stop the server with us
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """``python -m viewer.launch STORE [--host H] [--port P]``: the CLI's ``view``, its options
    checked the same way (a parser of its own let ``--port 70000`` through to a traceback)."""
    from engine.cli import main as evowatch

    return evowatch(["view", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
