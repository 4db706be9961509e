"""Speech in and out: the codec (`codec`, `mimi`), audio files and resampling (`io`, `resample`), speech
synthesis (`tts`: Piper, Flite, eSpeak NG; `voice_pool`) and word alignment (`align`: Whisper).

Nothing is imported here, so `import moshivis.audio.io` stays light (no torch model, no engine).
"""
