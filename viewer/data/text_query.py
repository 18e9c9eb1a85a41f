"""Ranking samples by a text prompt with the store's CLIP encoder."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from viewer.data.commits import Commit, reader



def is_clip(encoder: dict[str, Any]) -> bool:
    return str(encoder.get("identity", "")).startswith("clip")


@st.cache_resource(max_entries=1, show_spinner="Loading the text encoder…")
def text_encoder(identity: str, spec: str = ""):
    """The store's CLIP encoder on CPU, loaded from the spec the store recorded (stores
    written before it was recorded: from the identity, which loads for pretrained tags), or
    raises (the page shows the reason)."""
    from engine.encoders import make_encoder

    enc = make_encoder(spec or identity, device="cpu")
    if enc.identity != identity:
        raise ValueError(f"'{spec or identity}' now loads as '{enc.identity}', not the store's '{identity}' "
                         "(were the weights replaced?)")
    return enc


@st.cache_data(max_entries=16, show_spinner="Ranking samples…")
def _query_scores(path: str, commit: Commit, identity: str, spec: str, prompt: str) -> np.ndarray:
    enc = text_encoder(identity, spec)
    t = np.asarray(enc.encode_text([prompt]), np.float32)[0]
    r = reader(path, commit)
    n = commit.layout_rows
    out = np.empty(n, np.float32)
    step = 65536
    for start in range(0, n, step):
        emb = r.samples("embedding", slice(start, min(n, start + step))).astype(np.float32)
        out[start:start + len(emb)] = emb @ t
    return out


def query_scores(path: str | Path, commit: Commit, encoder: dict[str, Any], prompt: str) -> np.ndarray:
    """Cosine similarity of every laid-out row's embedding to the prompt (cached)."""
    return _query_scores(str(path), commit, str(encoder.get("identity", "")), str(encoder.get("spec") or ""), prompt)


def top_matches(scores: np.ndarray, visible: np.ndarray, k: int) -> np.ndarray:
    rows = np.flatnonzero(visible)
    if not len(rows):
        return rows
    k = min(k, len(rows))
    part = np.argpartition(-scores[rows], k - 1)[:k]
    best = rows[part]
    return best[np.argsort(-scores[best], kind="stable")]

