"""Encoder contract: spec parsing, pixels, the real open_clip path on a tiny config, offline failures."""
from __future__ import annotations

import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from engine import encoders
from engine.encoders import loading
from engine.encoders import (
    ClipPreprocessor,
    Encoder,
    EncoderSpec,
    PixelsEncoder,
    make_encoder,
    parse_device,
    parse_encoder_spec,
)
from engine.clip_weights import cached_pretrained_path
from engine.errors import EncoderSpecError, EvowatchError, WeightsNotFoundError

TINY = Path(__file__).parent / "data" / "evowatch-tiny.json"
TINY_RANDOM = f"clip:{TINY}/random"


@pytest.fixture(autouse=True)
def offline_hub(tmp_path_factory, monkeypatch):
    """No test may reach a model hub: offline mode and an empty Hugging Face home."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return home


@pytest.fixture
def no_cuda(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(40, 50), (32, 32), (33, 90), (100, 31), (17, 20), (250, 300)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


# ---------------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pixels", EncoderSpec(kind="pixels", size=16)),
        ("pixels:8", EncoderSpec(kind="pixels", size=8)),
        (" clip:ViT-B-32/laion2b_s34b_b79k ",
         EncoderSpec(kind="clip", arch="ViT-B-32", source="tag", tag="laion2b_s34b_b79k")),
        ("clip:ViT-B-32/random", EncoderSpec(kind="clip", arch="ViT-B-32", source="random")),
        ("clip:ViT-B-32@/w/x@1.pt", EncoderSpec(kind="clip", arch="ViT-B-32", source="path", path=Path("/w/x@1.pt"))),
        ("clip:cfg/tiny.json/random", EncoderSpec(kind="clip", arch="cfg/tiny.json", source="random")),
        ("clip:cfg/tiny.json@w.pt", EncoderSpec(kind="clip", arch="cfg/tiny.json", source="path", path=Path("w.pt"))),
        ("clip:local-dir:/m/dir", EncoderSpec(kind="clip", source="local-dir", path=Path("/m/dir"))),
        ("clip:ViT-B-32/openai@/w/b.pt", EncoderSpec(kind="clip", arch="ViT-B-32", source="path", tag="openai",
                                                     path=Path("/w/b.pt"))),
        ("clip:/p@v2/tiny.json/random", EncoderSpec(kind="clip", arch="/p@v2/tiny.json", source="random")),
        ("clip:/p@v2/tiny.json@w.pt", EncoderSpec(kind="clip", arch="/p@v2/tiny.json", source="path", path=Path("w.pt"))),
        ("clip:ViT-B-32@/x/clip.json-v2/w.pt", EncoderSpec(kind="clip", arch="ViT-B-32", source="path",  # round AC
                                                           path=Path("/x/clip.json-v2/w.pt"))),
    ],
)
def test_parse_encoder_spec(spec, expected):
    assert parse_encoder_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", "clip", "clip:", "clip:ViT-B-32", "clip:/random", "clip:ViT-B-32@", "clip:@w.pt",
     "clip:cfg/tiny.json", "clip:local-dir:", "pixels:3", "pixels:65", "pixels:x", "pixel", "ViT-B-32", 42,
     "pixels:\u00b2"],  # a digit to str.isdigit, not to int(): it raised int()'s ValueError
)
def test_parse_encoder_spec_rejects(spec):
    with pytest.raises(EncoderSpecError, match=r"Expected .* Got .* instead\.") as info:
        parse_encoder_spec(spec)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_open_clips_hf_hub_names_are_answered_with_the_tag_to_write():
    """Round Z: `clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K` was "Got 'hf-hub:laion'"."""
    with pytest.raises(EncoderSpecError) as info:
        parse_encoder_spec("clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert str(info.value).endswith("open_clip's hf-hub: names are written clip:ARCH/TAG, the tag whose weights that "
                                    "repository holds (here clip:ViT-B-32/laion2b_s34b_b79k), or clip:local-dir:FOLDER "
                                    "for a copy of the repository.")


def test_parse_device():
    assert [parse_device(d) for d in ("auto", "CPU", "cuda", "cuda:1")] == ["auto", "cpu", "cuda", "cuda:1"]
    for bad in ("gpu", "cuda:x", "", None, "cuda:\u00b2"):  # '\u00b2' (superscript two) passed, for int() to fail
        with pytest.raises(EncoderSpecError, match="Expected device"):
            parse_device(bad)


# ---------------------------------------------------------------------------------- pixels
def test_pixels_deterministic_and_normalised():
    enc = make_encoder("pixels")
    assert isinstance(enc, Encoder) and isinstance(enc, PixelsEncoder)
    assert (enc.identity, enc.dim, enc.input_size, enc.device, enc.fallback) == ("pixels:16", 768, 16, "cpu", None)
    assert enc.supports_text is False
    batch = np.stack([enc.preprocess(im) for im in _images()])
    assert batch.shape == (6, 3, 16, 16) and batch.dtype == np.float32
    vecs = enc.encode(batch)
    assert vecs.dtype == np.float32 and vecs.shape == (6, 768)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vecs.sum(axis=1), 0.0, atol=1e-4)  # centred per image
    again = make_encoder("pixels").encode(np.stack([enc.preprocess(im) for im in _images()]))
    assert np.array_equal(vecs, again)
    assert np.array_equal(enc.encode(batch[2:4]), vecs[2:4])  # rows independent of the batch
    # a brightness/contrast change barely moves the (centred, normalised) vector
    img = _images()[1]
    brighter = (img.astype(np.float64) * 0.5 + 60).round().astype(np.uint8)
    sim = (enc.encode(enc.preprocess(brighter)[None]) @ enc.encode(enc.preprocess(img)[None]).T)[0, 0]
    assert sim > 0.99
    with pytest.raises(EvowatchError, match="no text tower"):
        enc.encode_text(["a cat"])


def test_pixels_flat_image_and_grayscale():
    enc = make_encoder("pixels:4")
    flat = enc.encode(enc.preprocess(np.full((9, 9, 3), 7, np.uint8))[None])
    np.testing.assert_allclose(flat, np.full((1, 48), 1 / np.sqrt(48)), rtol=1e-6)
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert np.array_equal(enc.preprocess(gray), enc.preprocess(np.repeat(gray[:, :, None], 3, axis=2)))
    with pytest.raises(ValueError, match="Expected a uint8"):
        enc.preprocess(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"Expected a batch .* Got shape \(2, 3, 5, 5\) instead"):
        enc.encode(np.zeros((2, 3, 5, 5), np.float32))


# ---------------------------------------------------------------------------------- preprocess
@pytest.mark.parametrize(
    ("size", "interpolation", "resize_mode"),
    [(224, "bicubic", "shortest"), (32, "bicubic", "shortest"), (64, "bilinear", "shortest"),
     (48, "bicubic", "squash"), (48, "bicubic", "longest")],
)
def test_preprocess_matches_open_clip_transform(size, interpolation, resize_mode):
    open_clip = pytest.importorskip("open_clip")
    from PIL import Image

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    ours = ClipPreprocessor(size, mean, std, interpolation, resize_mode)
    theirs = open_clip.transform.image_transform(
        size, is_train=False, mean=mean, std=std, interpolation=interpolation, resize_mode=resize_mode)
    for img in _images(1) + [np.zeros((size, size, 3), np.uint8) + 9]:
        expected = theirs(Image.fromarray(img)).numpy()
        got = ours(img)
        assert got.shape == expected.shape == (3, size, size) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_preprocessors_pickle():
    clip_pre = ClipPreprocessor(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    for pre in (clip_pre, make_encoder("pixels").preprocessor):
        copy = pickle.loads(pickle.dumps(pre))
        assert np.array_equal(copy(_images()[0]), pre(_images()[0]))


def test_preprocessor_halves_make_the_whole_on_a_batch():
    """Workers send the uint8 first half; the encoder's thread finishes whole batches."""
    clip_pre = ClipPreprocessor(32, (0.48, 0.45, 0.40), (0.26, 0.26, 0.27), "bicubic", "shortest")
    for pre in (clip_pre, make_encoder("pixels").preprocessor):
        images = _images()
        pixels = np.stack([pre.pixels(im) for im in images])
        assert pixels.dtype == np.uint8 and pixels.shape[1] == 3
        np.testing.assert_array_equal(pre.to_input(pixels), np.stack([pre(im) for im in images]))


# ---------------------------------------------------------------------------------- CLIP
def test_tiny_clip_random(no_cuda):
    enc = make_encoder(TINY_RANDOM)  # device auto without CUDA -> CPU, announced
    assert isinstance(enc, Encoder) and enc.supports_text
    assert enc.identity.startswith("clip:evowatch-tiny#cfg-") and enc.identity.endswith("/random-seed0")
    assert (enc.dim, enc.input_size, enc.device) == (64, 32, "cpu")
    assert enc.fallback == encoders.CPU_FALLBACK_NOTE
    assert enc.batch_size == encoders.CPU_BATCH_SIZE
    batch = np.stack([enc.preprocess(im) for im in _images()])
    vecs = enc.encode(batch)
    assert vecs.shape == (6, 64) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    again = make_encoder(TINY_RANDOM, device="cpu")
    assert again.fallback is None and again.identity == enc.identity
    np.testing.assert_allclose(again.encode(batch), vecs, atol=1e-6)  # seeded random init
    assert enc.encode(batch[:0]).shape == (0, 64)
    pixels = np.stack([enc.preprocessor.pixels(im) for im in _images()])  # what the pipeline encodes
    assert np.array_equal(enc.encode_pixels(pixels), vecs)
    assert np.array_equal(enc.encode_pixels([pixels[:2], pixels[2:5], pixels[5:]]), vecs)  # one batch in parts
    assert enc.encode_pixels([]).shape == (0, 64)  # no stacks: no rows, as on CUDA
    text = enc.encode_text(["a photo of a digit", "a blurry image", "noise"])
    assert text.shape == (3, 64) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    assert enc.encode_text([]).shape == (0, 64)
    with pytest.raises(ValueError, match="Expected a list of prompt strings"):
        enc.encode_text("a cat")
    with pytest.raises(ValueError, match=r"\(n, 3, 32, 32\)"):
        enc.encode(np.zeros((1, 3, 224, 224), np.float32))


@pytest.mark.parametrize("source", ["random", "path"])
def test_half_precision_model_encodes_like_float32(tmp_path, source):
    """On CUDA the model runs in open_clip's fp16 precision (half weights, no autocast): the
    same code run on the CPU gives the float32 vectors to fp16's precision, for weights
    loaded from a file too (the CUDA-only test checks the device itself)."""
    torch = pytest.importorskip("torch")
    spec = TINY_RANDOM
    if source == "path":
        model, _ = _tiny_model_and_transform(seed=7)
        torch.save(model.state_dict(), tmp_path / "w.pt")
        spec = f"clip:{TINY}@{tmp_path / 'w.pt'}"
    full = make_encoder(spec, device="cpu")
    model, name, identity = encoders._load_clip(encoders.parse_encoder_spec(spec), "fp16")
    half = encoders.ClipEncoder(model, name, identity, "cpu", None, precision="fp16")
    assert model.visual.conv1.weight.dtype == torch.float16 and half.identity == full.identity
    batch = np.stack([full.preprocess(im) for im in _images()])
    out = half.encode(batch)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out, full.encode(batch), atol=2e-2)
    assert np.abs(out - full.encode(batch)).max() > 0  # really computed in half
    np.testing.assert_allclose(half.encode_text(["a cat"]), full.encode_text(["a cat"]), atol=2e-2)


def test_spec_loads_the_same_encoder_again(tmp_path, monkeypatch):
    """What a store records as ``spec`` loads the same identity from another working directory
    (identities name weights by content and cannot be loaded themselves)."""
    torch = pytest.importorskip("torch")
    model, _ = _tiny_model_and_transform(seed=7)
    (tmp_path / "run").mkdir()
    torch.save(model.state_dict(), tmp_path / "run" / "w.pt")
    config = tmp_path / "run" / "tiny.json"
    shutil.copy(TINY, config)
    monkeypatch.chdir(tmp_path / "run")
    specs = ["clip:tiny.json/random", "clip:tiny.json@w.pt", "pixels:8"]
    made = [make_encoder(spec, device="cpu") for spec in specs]
    assert [e.spec for e in made] == [f"clip:{config}/random", f"clip:{config}@{tmp_path / 'run' / 'w.pt'}", "pixels:8"]
    monkeypatch.chdir(tmp_path)
    for enc in made:
        assert make_encoder(enc.spec, device="cpu").identity == enc.identity
    with pytest.raises(EncoderSpecError):
        make_encoder(made[0].identity, device="cpu")  # why the spec is recorded


@pytest.mark.parametrize("spec", ["pixels:8", TINY_RANDOM])
def test_a_batch_size_below_one_is_refused(spec, no_cuda):
    """A batch of 0 (or of 1.5, or True) never advanced: CLIP's encode raised "range() arg 3 must not be zero",
    pixels silently used its default."""
    for size in (0, -4, 1.5, True):  # 1.5 was taken as 1
        with pytest.raises(ValueError, match=f"at least 1. Got {size!r} instead"):
            make_encoder(spec, device="cpu", batch_size=size)
    assert make_encoder(spec, device="cpu", batch_size=3).batch_size == 3


def test_cuda_requested_but_unavailable(no_cuda):
    with pytest.raises(EvowatchError, match="--device cuda was requested"):
        make_encoder(TINY_RANDOM, device="cuda")


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_an_unavailable_cuda_device_is_refused_by_pixels_too(no_cuda, device, caplog):
    """pixels runs on the CPU, but an explicit --device cuda on a machine without one is the
    same error as for CLIP (it was accepted and the store said cpu); auto stays quiet."""
    with pytest.raises(EvowatchError, match=f"--device {device} was requested but torch sees no usable CUDA"):
        make_encoder("pixels", device=device)
    caplog.clear()
    assert make_encoder("pixels", device="auto").device == "cpu" and not caplog.records


def _tiny_model_and_transform(seed: int):
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    make_encoder(TINY_RANDOM, device="cpu")  # registers the tiny config
    torch.manual_seed(seed)
    model, _, transform = open_clip.create_model_and_transforms("evowatch-tiny")
    return model.eval(), transform


def test_weights_round_trip_matches_open_clip(tmp_path):
    torch = pytest.importorskip("torch")
    from PIL import Image

    model, transform = _tiny_model_and_transform(seed=123)
    weights = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), weights)
    enc = make_encoder(f"clip:{TINY}@{weights}", device="cpu")
    images = _images(2)
    with torch.inference_mode():
        ref = model.encode_image(torch.stack([transform(Image.fromarray(im)) for im in images]))
        ref_text = model.encode_text(__import__("open_clip").get_tokenizer("evowatch-tiny")(["a cat", "a dog"]))
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    ref_text = torch.nn.functional.normalize(ref_text, dim=-1).numpy()
    vecs = enc.encode(np.stack([enc.preprocess(im) for im in images]))
    np.testing.assert_allclose(vecs, ref, atol=1e-5)
    np.testing.assert_allclose(enc.encode_text(["a cat", "a dog"]), ref_text, atol=1e-5)
    rand = make_encoder(TINY_RANDOM, device="cpu").encode(np.stack([enc.preprocess(im) for im in images]))
    assert np.abs(rand - vecs).max() > 1e-2  # the file's weights were really loaded

    # identity names the content, not the path; a folder and an open_clip checkpoint dict also load
    assert enc.identity.startswith("clip:evowatch-tiny#cfg-") and "@sha256-" in enc.identity
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               moved / "checkpoint.pth")
    other = make_encoder(f"clip:{TINY}@{moved}", device="cpu")
    np.testing.assert_allclose(other.encode(np.stack([enc.preprocess(im) for im in images])), vecs, atol=1e-6)
    shutil.copy(weights, moved / "copy.pt")
    assert make_encoder(f"clip:{TINY}@{moved / 'copy.pt'}", device="cpu").identity == enc.identity

    # open_clip's local-dir folder form
    folder = tmp_path / "local"
    folder.mkdir()
    model_cfg = __import__("json").loads(TINY.read_text())
    (folder / "open_clip_config.json").write_text(__import__("json").dumps({"model_cfg": model_cfg}))
    shutil.copy(weights, folder / "open_clip_pytorch_model.bin")
    local = make_encoder(f"clip:local-dir:{folder}", device="cpu")
    assert local.identity.startswith("clip:local-dir#cfg-")
    np.testing.assert_allclose(local.encode(np.stack([enc.preprocess(im) for im in images])), vecs, atol=1e-6)
    # a .pt in the folder (round Z): open_clip's own pick skips .pt files, and a random model
    # was used under the identity of the weights hashed
    (folder / "open_clip_pytorch_model.bin").rename(folder / "weights.pt")
    local = make_encoder(f"clip:local-dir:{folder}", device="cpu")
    np.testing.assert_allclose(local.encode(np.stack([enc.preprocess(im) for im in images])), vecs, atol=1e-6)


def test_cpu_fallback_is_said_once_the_weights_are_found(tmp_path, no_cuda, caplog):
    """Round AN: "encoding on CPU" came first, then the error that the weights were missing."""
    with caplog.at_level("WARNING", logger="engine.encoders"), pytest.raises(WeightsNotFoundError):
        make_encoder(f"clip:{TINY}@{tmp_path / 'nope.pt'}")
    assert encoders.CPU_FALLBACK_NOTE not in caplog.text
    with caplog.at_level("WARNING", logger="engine.encoders"):
        make_encoder(TINY_RANDOM)
    assert caplog.text.count(encoders.CPU_FALLBACK_NOTE) == 1


def test_missing_or_unfit_weights_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(WeightsNotFoundError, match=r"nope\.pt does not exist") as info:
        make_encoder(f"clip:{TINY}@{missing}", device="cpu")
    assert "\n" not in str(info.value)
    with pytest.raises(WeightsNotFoundError, match="No weights file"):
        make_encoder(f"clip:{TINY}@{tmp_path}", device="cpu")
    (tmp_path / "open_clip_config.json").write_text("{}")  # a local-dir folder without its weights
    with pytest.raises(WeightsNotFoundError, match=r"No weights file .* in .*; put the weights beside open_clip_config\.json\.$"):
        make_encoder(f"clip:local-dir:{tmp_path}", device="cpu")
    torch = pytest.importorskip("torch")
    torch.save({"visual.bogus": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(EvowatchError, match="Cannot build open_clip model evowatch-tiny") as info:
        make_encoder(f"clip:{TINY}@{tmp_path / 'bad.pt'}", device="cpu")
    assert "\n" not in str(info.value) and "Missing key(s) in state_dict" in str(info.value)
    assert '", ...); the weights must be' in str(info.value)  # round AJ: the key list was cut inside a key
    # round Z: a page saved under the weights' name, a cut .safetensors were tracebacks
    (tmp_path / "page.pt").write_text("<!DOCTYPE html><html>Sign in to download</html>")
    model, _ = _tiny_model_and_transform(seed=1)
    from safetensors.torch import save_file

    save_file(model.state_dict(), tmp_path / "whole.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "whole.safetensors").read_bytes()[:1000])
    (tmp_path / "lfs.pt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 605180898\n")
    with pytest.raises(WeightsNotFoundError, match=r"lfs\.pt is a Git LFS pointer, not the weights: run `git lfs pull`"):
        make_encoder(f"clip:{TINY}@{tmp_path / 'lfs.pt'}", device="cpu")  # torch advised weights_only=False
    (tmp_path / "notes.pt").write_text("hello\n")  # round BE: "(KeyError: 101)", pickle's reading of "e"
    for name, error in [("page.pt", "not a file torch.save or safetensors wrote)"), ("notes.pt", "not a file torch.save "
                        "or safetensors wrote)"), ("cut.safetensors", "SafetensorError: ")]:
        with pytest.raises(EvowatchError) as info:  # round AF: torch's advice to unpickle anyway, cut mid-sentence
            make_encoder(f"clip:{TINY}@{tmp_path / name}", device="cpu")
        assert str(info.value).startswith(f"Cannot build open_clip model evowatch-tiny from {tmp_path / name} ({error}")
        assert "\n" not in str(info.value) and len(str(info.value)) < 600 and "weights_only" not in str(info.value)
    import pickle
    import warnings

    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(EvowatchError, match="not a file torch.save wrote"):
        warnings.simplefilter("always")
        make_encoder(f"clip:{TINY}@{tmp_path / 'plain.pt'}", device="cpu")
    assert not [w for w in caught if "pickle protocol" in str(w.message)]  # round AJ: torch's warning, then our line
    (tmp_path / "empty.pt").write_bytes(b"")  # was "(EOFError: EOFError)"
    with pytest.raises(EvowatchError, match=r"\(EOFError: the file is empty or cut short\)"):
        make_encoder(f"clip:{TINY}@{tmp_path / 'empty.pt'}", device="cpu")


def test_a_tag_trained_with_quickgelu_is_built_with_it(monkeypatch, tmp_path):
    """Round Z: given the cached file's path, open_clip neither set QuickGELU from the tag nor
    warned, and clip:ViT-B-32/openai (27 tags so) ran on GELU."""
    built = []
    monkeypatch.setattr(loading, "pretrained_weights", lambda name, tag, cfg: tmp_path / "w.bin")
    monkeypatch.setattr(loading, "_create", lambda name, weights, **kwargs: built.append(kwargs) or None)
    specs = ("clip:ViT-B-32/openai", "clip:RN50/openai", "clip:ViT-B-32/laion2b_s34b_b79k", "clip:ViT-B-32-quickgelu/openai")
    identities = [encoders._load_clip(parse_encoder_spec(spec))[2] for spec in specs]
    assert [kwargs["force_quick_gelu"] for kwargs in built] == [True, True, False, False]  # the last's config has it
    # round AA: the vectors change, so must the identity (a store of the GELU model's refuses them)
    assert identities == ["clip:ViT-B-32/openai+quickgelu", "clip:RN50/openai+quickgelu",
                          "clip:ViT-B-32/laion2b_s34b_b79k", "clip:ViT-B-32-quickgelu/openai"]


def test_a_tags_weights_given_as_a_file_are_read_as_the_tags(monkeypatch, tmp_path):
    """Round AB: a tag's weights copied by hand and given as ARCH@FILE (the offline message said
    so) were built with open_clip's defaults: GELU for ViT-B-32/openai, OpenAI's mean and
    bicubic resize for SigLIP's; the same file gave other vectors than the tag."""
    built = []
    (tmp_path / "w.bin").write_bytes(b"weights")
    monkeypatch.setattr(loading, "_create", lambda name, weights, **kwargs: built.append((weights, kwargs)) or None)
    specs = (f"clip:ViT-B-32/openai@{tmp_path / 'w.bin'}", f"clip:ViT-B-16-SigLIP/webli@{tmp_path / 'w.bin'}")
    identities = [encoders._load_clip(parse_encoder_spec(spec))[2] for spec in specs]
    digest = loading.sha256_file(tmp_path / "w.bin")[:12]
    assert identities == [f"clip:ViT-B-32/openai@sha256-{digest}+quickgelu", f"clip:ViT-B-16-SigLIP/webli@sha256-{digest}"]
    assert built[0][0] == str(tmp_path / "w.bin") and built[0][1]["force_quick_gelu"] is True
    assert built[1][1]["image_mean"] == (0.5, 0.5, 0.5) and built[1][1]["image_resize_mode"] == "squash"
    assert parse_encoder_spec(specs[0]).text() == specs[0]  # what the store records loads it again
    with pytest.raises(EncoderSpecError, match="Expected a pretrained tag for ViT-B-32"):
        encoders._load_clip(parse_encoder_spec(f"clip:ViT-B-32/nosuchtag@{tmp_path / 'w.bin'}"))


def test_a_store_follows_its_weights_to_where_they_moved(tmp_path, capsys):
    """Round Z: weights moved, a resume named them at their new path, yet the store kept the
    old one: the next resume without --encoder failed again."""
    torch = pytest.importorskip("torch")
    from PIL import Image
    from engine.cli import main

    model, _ = _tiny_model_and_transform(seed=5)
    torch.save(model.state_dict(), tmp_path / "old.pt")
    run, store = tmp_path / "run" / "step_1", tmp_path / "s.zarr"
    run.mkdir(parents=True)
    for i, im in enumerate(_images(3)[:2]):
        Image.fromarray(im).save(run / f"{i}.png")
    argv = ["-q", "watch", str(run.parent), "--store", str(store), "--once", "--settle", "0", "--no-layout",
            "--no-metrics", "--device", "cpu"]
    assert main([*argv, "--encoder", f"clip:{TINY}@{tmp_path / 'old.pt'}"]) == 0
    (tmp_path / "old.pt").rename(tmp_path / "new.pt")
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"evowatch: error: {store}: the store's encoder clip:{TINY}@{tmp_path / 'old.pt'}: Weights file "
        f"{tmp_path / 'old.pt'} does not exist (from clip:{TINY}@{tmp_path / 'old.pt'}). Moved? Pass --encoder with the "
        "weights where they are now (the store checks they are the same)")
    assert main([*argv, "--encoder", f"clip:{TINY}@{tmp_path / 'new.pt'}"]) == 0
    assert main(argv) == 0


@pytest.mark.parametrize("offline", [True, False])
def test_missing_pretrained_weights_fail_fast(offline, monkeypatch):
    if not offline:  # the real hub probe, against a port that refuses at once: never the internet
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        import huggingface_hub.constants as hc

        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    pytest.importorskip("open_clip")
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as info:
        make_encoder("clip:ViT-B-32/laion2b_s34b_b79k", device="cpu")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "\n" not in message
    assert "clip:ViT-B-32/laion2b_s34b_b79k" in message and "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message
    assert "clip:ViT-B-32/laion2b_s34b_b79k@/path/to/weights.pt" in message and "--encoder pixels" in message
    assert ("HF_HUB_OFFLINE is set" if offline else "the hub is unreachable") in message


def test_cached_pretrained_weights_are_found(offline_hub):
    open_clip = pytest.importorskip("open_clip")
    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")
    assert cached_pretrained_path(cfg) is None
    repo = offline_hub / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"x")
    assert cached_pretrained_path(cfg) == snapshot / "open_clip_pytorch_model.bin"
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")  # preferred, as open_clip does
    assert cached_pretrained_path(cfg) == snapshot / "open_clip_model.safetensors"


def test_unknown_model_tag_or_config(tmp_path):
    pytest.importorskip("open_clip")
    with pytest.raises(EncoderSpecError, match="Expected an open_clip model name"):
        make_encoder("clip:ViT-Q-99/random", device="cpu")
    with pytest.raises(EncoderSpecError, match=r"Expected a pretrained tag for ViT-B-32 \(one of .*openai"):
        make_encoder("clip:ViT-B-32/no_such_tag", device="cpu")
    # the close name said: OpenAI's spelling ViT-B/32, a tag's last letter left out
    with pytest.raises(EncoderSpecError, match=r"Got 'ViT-B/32' instead \(did you mean ViT-B-32\?\)\.$"):
        make_encoder("clip:ViT-B/32/openai", device="cpu")
    with pytest.raises(EncoderSpecError, match=r"Got 'laion2b_s34b_b79' instead \(did you mean laion2b_s34b_b79k\?\)\.$"):
        make_encoder("clip:ViT-B-32/laion2b_s34b_b79", device="cpu")
    with pytest.raises(EncoderSpecError, match="does not exist"):
        make_encoder(f"clip:{tmp_path / 'missing.json'}/random", device="cpu")
    (tmp_path / "broken.json").write_text('{"embed_dim": 8}')
    with pytest.raises(EncoderSpecError, match="without vision_cfg, text_cfg"):
        make_encoder(f"clip:{tmp_path / 'broken.json'}/random", device="cpu")
    clash = tmp_path / "evowatch-tiny.json"
    clash.write_text(TINY.read_text().replace('"embed_dim": 64', '"embed_dim": 32'))
    make_encoder(TINY_RANDOM, device="cpu")
    with pytest.raises(EncoderSpecError, match="different model config named 'evowatch-tiny'"):
        make_encoder(f"clip:{clash}/random", device="cpu")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_matches_cpu():
    cpu = make_encoder(TINY_RANDOM, device="cpu")
    gpu = make_encoder(TINY_RANDOM, device="cuda")
    assert gpu.device == "cuda" and gpu.fallback is None and gpu.batch_size > cpu.batch_size
    batch = np.stack([cpu.preprocess(im) for im in _images()])
    out = gpu.encode(batch)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, cpu.encode(batch), atol=2e-2)
    pixels = np.stack([cpu.preprocessor.pixels(im) for im in _images()])  # inputs finished on the GPU
    np.testing.assert_allclose(gpu.encode_pixels(pixels), out, atol=1e-3)
    np.testing.assert_allclose(gpu.encode_pixels([pixels[:4], pixels[4:]]), out, atol=1e-3)  # parts joined on the GPU
    assert gpu.encode_pixels(pixels[:0]).shape == (0, gpu.dim)
    with pytest.raises(ValueError, match="Expected uint8 pixels"):
        gpu.encode_pixels(batch)
    np.testing.assert_allclose(gpu.encode_text(["a cat"]), cpu.encode_text(["a cat"]), atol=2e-2)
