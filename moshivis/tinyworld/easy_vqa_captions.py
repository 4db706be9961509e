"""easy-vqa images as (image, caption) pairs for contrastive pre-training of a small SigLIP tower.

Each easy-vqa image shows one shape of one colour. What we know of it is five attributes, each an
integer index (or -1 when unknown):

    colour  (8, from the QA answers)      shape (3, from the QA answers)
    size    (small / medium / large, from the shape's pixel area)
    vert    (top / middle / bottom)       horiz (left / center / right)  (from pixels, `easy_vqa_layout`)

A caption mentions a random subset of the known attributes ("a small red triangle at the top left",
"there is a blue shape", "the circle is green"); `Caption.mention` records which values it claims, so
`caption_labels` can tell, for any image of a batch, whether the caption is true of it (+1), false (-1)
or undecidable because the image's attribute is unknown (0).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from moshivis.data.easy_vqa_answers import easy_vqa_attributes, easy_vqa_layout
from moshivis.data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES
from moshivis.data.sources import SourceRow, read_easy_vqa
from moshivis.data.spoken_answers import article_for

ATTRIBUTES: tuple[str, ...] = ("color", "shape", "size", "vert", "horiz")
SIZES: tuple[str, ...] = ("small", "medium", "large")
VERTS: tuple[str, ...] = ("top", "middle", "bottom")
HORIZS: tuple[str, ...] = ("left", "center", "right")
VALUES: dict[str, tuple[str, ...]] = {"color": EASY_COLORS, "shape": EASY_SHAPES, "size": SIZES,
                                      "vert": VERTS, "horiz": HORIZS}
COLOR, SHAPE, SIZE, VERT, HORIZ = range(5)
SMALL, MEDIUM, LARGE = range(3)
TOP, MIDDLE, BOTTOM = range(3)
LEFT, CENTER, RIGHT = range(3)

# Area fraction of the picture covered by the shape. Train quartiles are ~0.04 / ~0.12 over all shapes;
# "small"/"large" are only said outside these, so a caption's size word is a visual fact, not a guess.
SMALL_AREA = 0.04
LARGE_AREA = 0.12

UNKNOWN = -1


# ------------------------------------------------------------------------------------------------ data


@dataclass
class EasyVqaSet:
    """One easy-vqa split held in memory.

    images: [N, 64, 64, 3] uint8 RGB (HWC, what `preprocess_images` accepts per image).
    attrs:  [N, 5] int64, columns `ATTRIBUTES`, -1 where unknown.
    area:   [N] float32, fraction of the picture covered by the shape (0 when no shape was found).
    ids:    N image ids ("train/17").
    """

    images: torch.Tensor
    attrs: torch.Tensor
    area: torch.Tensor
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | torch.Tensor) -> "EasyVqaSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return EasyVqaSet(self.images[index], self.attrs[index], self.area[index],
                          [self.ids[i] for i in index.tolist()])


def size_class(area: float) -> int:
    return SMALL if area < SMALL_AREA else LARGE if area > LARGE_AREA else MEDIUM


def load_easy_vqa(split: str = "train", limit: int | None = None) -> EasyVqaSet:
    """Decode a split of the installed easy-vqa package (4,000 train / 1,000 test images) into memory.

    Colour and shape come from the QA answers (`easy_vqa_attributes`; some images have no question that
    tells them), position and size from the pixels (`easy_vqa_layout`). ~3 s for the train split.
    """
    images: list[np.ndarray] = []
    attrs: list[list[int]] = []
    areas: list[float] = []
    ids: list[str] = []
    for row in read_easy_vqa(split, limit=limit):
        if not isinstance(row, SourceRow):
            continue  # a stray question without its image: nothing to pair
        with Image.open(row.image.path) as im:
            images.append(np.asarray(im.convert("RGB"), dtype=np.uint8).copy())
        qa = easy_vqa_attributes(row.qa)
        layout = easy_vqa_layout(row.image.path)
        a = [_index(EASY_COLORS, qa.color), _index(EASY_SHAPES, qa.shape), UNKNOWN, UNKNOWN, UNKNOWN]
        area = 0.0
        if layout is not None:
            vert, horiz, _phrase, area = layout
            a[SIZE], a[VERT], a[HORIZ] = size_class(area), VERTS.index(vert), HORIZS.index(horiz)
        attrs.append(a)
        areas.append(area)
        ids.append(row.image.image_id)
    if not ids:
        raise ValueError(f"easy-vqa split {split!r}: no images read")
    return EasyVqaSet(torch.from_numpy(np.stack(images)), torch.tensor(attrs, dtype=torch.long),
                      torch.tensor(areas, dtype=torch.float32), ids)


def _index(values: tuple[str, ...], value: str | None) -> int:
    return values.index(value) if value in values else UNKNOWN


# --------------------------------------------------------------------------------------------- captions


@dataclass(frozen=True)
class Caption:
    text: str
    mention: tuple[int, int, int, int, int]  # value index claimed per attribute, -1 = not mentioned


_SIZE_WORDS = {SMALL: ("small", "little"), LARGE: ("large", "big")}
# Templates over a noun phrase {t} ("a red circle") and an optional position phrase {p}.
_TEMPLATES_NO_POS = ("{t}", "a picture of {t}", "an image of {t}", "there is {t}", "a drawing of {t}",
                     "{t} on a plain background")
_TEMPLATES_POS = ("{t} {p}", "a picture of {t} {p}", "an image of {t} {p}", "there is {t} {p}",
                  "{p} there is {t}", "a drawing of {t} {p}")


def _position_phrase(vert: int, horiz: int, which: str, rng: random.Random) -> str:
    """A phrase for `which` of the position ("both", "vert", "horiz"); callers only ask for what reads well."""
    v, h = VERTS[vert], HORIZS[horiz]
    if which == "vert":
        return f"at the {v}"
    if which == "horiz":
        return rng.choice([f"on the {h}", f"on the {h} side"])
    if vert == MIDDLE and horiz == CENTER:
        return rng.choice(["in the middle", "in the center"])
    if horiz == CENTER:
        return f"at the {v} center"
    if vert == MIDDLE:
        return f"at the middle {h}"
    return rng.choice([f"at the {v} {h}", f"in the {v} {h} corner"])


def make_caption(attr: Sequence[int], rng: random.Random, full: bool = False) -> Caption:
    """A caption of an image with attributes `attr` (5 indices, -1 unknown), mentioning a random subset.

    full=True: every known attribute, one fixed wording ("a small red circle at the top left"), used
    for retrieval evaluation. Only known attributes are mentioned, so the caption is true of its image.
    """
    color, shape, size, vert, horiz = (int(x) for x in attr)
    mention = [UNKNOWN] * 5
    # Colour and shape are what the image is about: mentioned most of the time. Size words only exist
    # for clearly small / large shapes; "medium" is never said.
    if color >= 0 and (full or rng.random() < 0.75):
        mention[COLOR] = color
    if shape >= 0 and (full or rng.random() < 0.75):
        mention[SHAPE] = shape
    if size in _SIZE_WORDS and (full or rng.random() < 0.35):
        mention[SIZE] = size
    pos = ""
    if vert >= 0 and (full or rng.random() < 0.5):
        # "at the middle" / "on the center" do not read well: those halves only come with the other half.
        options = ["both"] + (["vert"] if vert != MIDDLE else []) + (["horiz"] if horiz != CENTER else [])
        which = "both" if full else rng.choice(options)
        pos = _position_phrase(vert, horiz, which, rng)
        if which in ("both", "vert"):
            mention[VERT] = vert
        if which in ("both", "horiz"):
            mention[HORIZ] = horiz
    if all(m == UNKNOWN for m in mention):
        # Nothing drawn: say the first known thing so that no caption is empty of facts.
        for k in (COLOR, SHAPE):
            if attr[k] >= 0:
                mention[k] = int(attr[k])
                break
        else:
            if vert >= 0:
                pos, mention[VERT], mention[HORIZ] = _position_phrase(vert, horiz, "both", rng), vert, horiz

    words = []
    if mention[SIZE] >= 0:
        words.append(_SIZE_WORDS[mention[SIZE]][0] if full else rng.choice(_SIZE_WORDS[mention[SIZE]]))
    if mention[COLOR] >= 0:
        words.append(EASY_COLORS[mention[COLOR]])
    words.append(EASY_SHAPES[mention[SHAPE]] if mention[SHAPE] >= 0 else "shape")
    noun = " ".join(words)
    thing = f"{article_for(noun)} {noun}"
    if full:
        text = f"{thing} {pos}".strip()
    elif not pos and mention[COLOR] >= 0 and mention[SIZE] < 0 and rng.random() < 0.25:
        subject = EASY_SHAPES[mention[SHAPE]] if mention[SHAPE] >= 0 else "shape"
        text = f"the {subject} is {EASY_COLORS[mention[COLOR]]}"
    else:
        text = rng.choice(_TEMPLATES_POS if pos else _TEMPLATES_NO_POS).format(t=thing, p=pos)
    return Caption(text, (mention[0], mention[1], mention[2], mention[3], mention[4]))


def caption_labels(attrs: torch.Tensor, mentions: torch.Tensor) -> torch.Tensor:
    """Whether caption j is true of image i, for every pair of a batch.

    attrs [B_img, 5] (image attributes, -1 unknown), mentions [B_txt, 5] (claimed values, -1 none)
    -> [B_img, B_txt] int64: +1 true, -1 false (some claimed value differs from a known attribute),
    0 undecidable (no contradiction, but a claimed attribute of the image is unknown).
    """
    a = attrs[:, None, :]
    m = mentions[None, :, :]
    claimed = m >= 0
    known = a >= 0
    false = (claimed & known & (a != m)).any(-1)
    undecided = (claimed & ~known).any(-1)
    labels = torch.ones(false.shape, dtype=torch.long)
    labels[undecided] = 0
    labels[false] = -1
    return labels


# -------------------------------------------------------------------------------------------- tokenizer

PAD, UNK = 0, 1
_WORD = re.compile(r"[a-z]+")


def _vocabulary() -> tuple[str, ...]:
    """Every word a caption can contain (closed vocabulary: captions come from the templates above)."""
    texts = [*_TEMPLATES_NO_POS, *_TEMPLATES_POS, "the shape is an a in at on side corner middle center",
             *EASY_COLORS, *EASY_SHAPES, *VERTS, *HORIZS, *(w for ws in _SIZE_WORDS.values() for w in ws)]
    words = sorted({w for t in texts for w in _WORD.findall(t.replace("{t}", "").replace("{p}", ""))})
    return ("<pad>", "<unk>", *words)


VOCAB: tuple[str, ...] = _vocabulary()
_WORD_ID = {w: i for i, w in enumerate(VOCAB)}


def tokenize(texts: Sequence[str], vocab: Sequence[str] = VOCAB, max_len: int = 16) -> torch.Tensor:
    """Captions -> word ids [B, L] int64 (L = longest, at most max_len), PAD (0) after the end."""
    word_id = _WORD_ID if vocab is VOCAB else {w: i for i, w in enumerate(vocab)}
    rows = [[word_id.get(w, UNK) for w in _WORD.findall(t.lower())][:max_len] or [UNK] for t in texts]
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out
