"""Export selection (CSV), served by the viewer's own route at an address that outlives reruns.

A Streamlit download button gives its file a new address at every rerun, and a live watch
reruns the page at each commit: a click between a commit's rerun and the button's new
address got a 404 (about 1 click in 10 under a watch committing every 1-2 s). Made on every
rerun instead, a 100,000-row selection cost 2 s before its grid showed. Here each selection
gets an address (a digest of the store and its rows) kept across reruns, and the CSV is made
when that address is fetched. ``viewer/asgi.py`` mounts the route (what ``evowatch view``
runs); under ``streamlit run viewer/app.py`` the page falls back to the download button.
"""
from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Callable

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from stores.errors import EvowatchError
from stores.format import one_line

#: The route's path; the page links to it relative to its own address.
PREFIX = "evowatch/export"
FILE_NAME = "evowatch-selection.csv"
#: Selections kept servable: a link clicked after a few more selections still downloads.
KEPT = 32

_makers: collections.OrderedDict[str, Callable[[], str]] = collections.OrderedDict()
_lock = threading.Lock()
#: Whether this process serves the route (set by viewer/asgi.py before the page first runs).
served = False


def address(store_id: str | None, path: str, rows: np.ndarray, make: Callable[[], str]) -> str:
    """The address that serves ``make()``'s CSV of these rows of this store, the same across
    reruns (committed rows never change): the newest ``KEPT`` selections stay servable."""
    digest = hashlib.blake2b(f"{store_id}\0{path}\0".encode() + np.asarray(rows, np.int64).tobytes(),
                             digest_size=16).hexdigest()
    with _lock:
        _makers[digest] = make
        _makers.move_to_end(digest)
        while len(_makers) > KEPT:
            _makers.popitem(last=False)
    return f"{PREFIX}/{digest}/{FILE_NAME}"


async def _serve(request: Request) -> Response:
    with _lock:
        make = _makers.get(request.path_params["digest"])
    if make is None:
        return PlainTextResponse("This selection is no longer held: select it again on the page.", status_code=404)
    try:
        text = await run_in_threadpool(make)
    except EvowatchError as exc:  # the store made again, or gone: said in one line
        return PlainTextResponse(one_line(str(exc)), status_code=409)
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{FILE_NAME}"'})


ROUTE = Route(f"/{PREFIX}/{{digest}}/{FILE_NAME}", _serve)
