"""The same shards with the user's transcript words (synth `transcribe_user`) taken off the text stream:
the control of stop 25's transcript experiment (same dialogues, same audio, no transcript).

    python scripts/strip_user_transcripts.py IN_SHARDS OUT_SHARDS
"""
import sys
import dataclasses
import numpy as np
from moshivis.data.shards import ShardReader, ShardWriter, read_manifest
from moshivis.data.tokenizer import TextTokenizer, TEXT_PAD, TEXT_EPAD
src, out = sys.argv[1:3]
man = read_manifest(src)
tok = TextTokenizer("tinyworld/bundle/tokenizer.model")
config = dict(man["config"]) if "config" in man else None
n = stripped = 0
with ShardWriter(out, samples_per_shard=64, config=man["config"], resume=False) as w:
    for s in ShardReader(src, load_images=False):
        codes = np.array(s.codes, copy=True)
        if s.kind == "image_speech":
            turns = s.meta["turns"]
            for word, turn, frame, target, ref in s.meta["words"]:
                if turns[turn]["speaker"] != "user" or frame is None:
                    continue
                k = len(tok.encode_word(word))
                codes[0, frame:frame + k] = TEXT_PAD
                if frame > 0 and codes[0, frame - 1] == TEXT_EPAD:
                    codes[0, frame - 1] = TEXT_PAD
                stripped += 1
        w.write(dataclasses.replace(s, codes=codes))
        n += 1
print(n, "samples,", stripped, "user words stripped")
