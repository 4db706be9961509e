"""Where a benchmark's files are: a local path as given, or a hub dataset id fetched only when online.

`resolve_dataset_path("kyutai/Babillage", allow_patterns=["coco/*"])`:
1. an existing local file or folder is returned as is (a local copy always wins over the hub);
2. otherwise, if the string looks like a hub id ("org/name"), `huggingface_hub.snapshot_download` fetches
   it (only the files matching `allow_patterns`), or, when offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE),
   looks it up in the local hub cache only;
3. otherwise a `FileNotFoundError` that says what was tried and how to get the files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["hub_offline", "looks_like_hub_id", "resolve_dataset_path"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the environment forbids hub access (the variables `huggingface_hub`/`datasets` honour)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def looks_like_hub_id(s: str) -> bool:
    return bool(_HUB_ID.match(s)) and not s.startswith((".", "/", "~"))


def resolve_dataset_path(
    path_or_id: str | os.PathLike[str],
    allow_patterns: Sequence[str] | None = None,
    offline: bool | None = None,
    revision: str | None = None,
) -> Path:
    """Local path of a benchmark given as a path or a hub dataset id (module docstring)."""
    path = Path(path_or_id).expanduser()
    if path.exists():
        return path
    s = str(path_or_id)
    if not looks_like_hub_id(s):
        raise FileNotFoundError(f"{s}: no such file or folder")
    offline = hub_offline() if offline is None else offline
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # a declared dependency, but say so plainly if it is absent
        raise FileNotFoundError(f"{s}: not a local path, and huggingface_hub is not installed") from e
    patterns = list(allow_patterns) if allow_patterns else None
    try:
        local = snapshot_download(repo_id=s, repo_type="dataset", allow_patterns=patterns, revision=revision,
                                  local_files_only=offline)
    except Exception as e:  # hub errors are many types (offline, 404, gated, network)
        how = ("the hub is offline (HF_HUB_OFFLINE) and the files are not in the local cache"
               if offline else f"download failed: {type(e).__name__}: {e}")
        raise FileNotFoundError(
            f"{s}: not a local path; {how}. Download it where there is a network, e.g. "
            f"`huggingface-cli download --repo-type dataset {s} --local-dir DIR`, and pass DIR instead."
        ) from e
    return Path(local)
