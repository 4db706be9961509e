"""Resampling quality and audio file reading/writing errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from moshivis.audio.io import check_audio, load_audio, resample, save_wav


def tone(freq: float, sr: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def peak_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


def level_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) / np.sqrt(0.5) + 1e-12))


@pytest.mark.parametrize("sr_in,sr_out,freq", [(22050, 24000, 440.0), (24000, 16000, 1000.0),
                                               (16000, 24000, 3000.0), (44100, 24000, 7000.0),
                                               (8000, 24000, 300.0)])
def test_resample_keeps_frequency(sr_in: int, sr_out: int, freq: float) -> None:
    y = resample(tone(freq, sr_in), sr_in, sr_out)
    assert y.dtype == np.float32 and len(y) == sr_out  # ceil(S * out / in) for 1 s
    assert abs(peak_frequency(y, sr_out) - freq) <= 1.0
    inner = slice(100, -100)  # the edges see a zero-padded half filter
    assert np.abs(y - tone(freq, sr_out))[inner].max() < 1e-3


def test_resample_rejects_aliases() -> None:
    # 9 kHz is above the 8 kHz Nyquist of 16 kHz: it must be filtered out, not folded to 7 kHz.
    assert level_db(resample(tone(9000.0, 24000), 24000, 16000)[100:-100]) < -70


def test_resample_paths_agree_and_shapes() -> None:
    x = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32)
    poly = resample(x, 22050, 24000, method="polyphase")
    direct = resample(x, 22050, 24000, method="direct")
    assert poly.shape == (2, -(-5000 * 160 // 147))
    np.testing.assert_allclose(poly, direct, atol=1e-5)
    assert resample(x[0], 24000, 24000) is not x[0] and np.array_equal(resample(x[0], 24000, 24000), x[0])
    # Rates whose reduced ratio is huge (24000/23999) use the direct path automatically.
    assert resample(x[0, :500], 24000, 23999).shape == (500,)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 24000)


def test_load_mixes_down_and_resamples(tmp_path) -> None:
    stereo = np.stack([tone(440.0, 22050), 0.5 * tone(440.0, 22050)], axis=1)  # [S, 2]
    path = tmp_path / "stereo.wav"
    sf.write(str(path), stereo, 22050, subtype="FLOAT")
    audio, sr = load_audio(path)
    assert sr == 24000 and audio.dtype == np.float32 and audio.shape == (24000,)
    assert abs(peak_frequency(audio, sr) - 440.0) <= 1.0
    assert abs(np.abs(audio[1000:-1000]).max() - 0.75) < 0.01  # mean of the two channels
    native, native_sr = load_audio(path, target_sr=None)
    assert native_sr == 22050 and native.shape == (22050,)


def test_save_round_trip(tmp_path) -> None:
    x = 0.5 * tone(440.0, 24000, 0.25)
    path = save_wav(tmp_path / "sub" / "x.wav", x, 24000)
    back, sr = load_audio(path)
    assert sr == 24000 and np.abs(back - x).max() < 1e-4  # 16-bit rounding
    exact = save_wav(tmp_path / "f.wav", x, 24000, subtype="FLOAT")
    assert np.array_equal(load_audio(exact)[0], x)


def test_bad_files_name_the_path(tmp_path) -> None:
    missing = tmp_path / "missing.wav"
    with pytest.raises(ValueError, match=f"^{missing}: cannot read audio"):
        load_audio(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ValueError, match=f"^{garbage}: cannot read audio"):
        load_audio(garbage)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 24000)
    with pytest.raises(ValueError, match=f"^{empty}: empty audio"):
        load_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.array([0.1, np.nan, np.inf, 0.2], dtype=np.float32), 24000, subtype="FLOAT")
    with pytest.raises(ValueError, match=f"^{nan}: 2 non-finite"):
        load_audio(nan)
    for err in (lambda: load_audio(missing), lambda: load_audio(garbage)):
        with pytest.raises(ValueError) as info:
            err()
        assert "\n" not in str(info.value)  # one line


def test_save_and_check_reject_bad_audio(tmp_path) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        save_wav(tmp_path / "x.wav", np.array([0.0, np.nan]), 24000)
    with pytest.raises(ValueError, match="empty"):
        save_wav(tmp_path / "x.wav", np.zeros(0), 24000)
    with pytest.raises(ValueError, match="mono"):
        check_audio(np.zeros((2, 10)), "here")
    assert check_audio(np.zeros((1, 10)), "here").shape == (10,)
    assert not (tmp_path / "x.wav").exists()
