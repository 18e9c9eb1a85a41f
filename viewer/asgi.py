"""The viewer as Streamlit's ASGI app (what ``evowatch view`` runs): ``viewer/app.py`` plus
one header on the page and the route that serves Export selection (CSV) (viewer/export.py).

The page's document carries ``Link: <static/js/BidiComponent….js>; rel=modulepreload``, so
the browser fetches and compiles the chunk that runs the map's component while Streamlit's
own front end starts, instead of after the script's first output reaches the page
(docs/viewer.md).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viewer import export
from viewer.preload import PRELOAD_NOW, chunk_files


class ModulePreloadHeader:
    """ASGI middleware: a ``Link: rel=modulepreload`` header on HTML responses."""

    def __init__(self, app: ASGIApp, files: list[str]) -> None:
        self.app = app
        self.link = ", ".join(f"<static/js/{name}>; rel=modulepreload" for name in files).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.link:
            await self.app(scope, receive, send)
            return

        async def send_with_link(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    message = {**message, "headers": headers + [(b"link", self.link)]}
            await send(message)

        await self.app(scope, receive, send_with_link)


export.served = True
app = st.App(Path(__file__).with_name("app.py"), routes=[export.ROUTE],
             middleware=[Middleware(ModulePreloadHeader, files=chunk_files(PRELOAD_NOW))])
