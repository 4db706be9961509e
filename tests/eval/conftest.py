"""Fixtures: small benchmark files in each published format, written per test into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_fixtures import touch_image, write_vqav2


@pytest.fixture
def vqav2_dir(tmp_path: Path) -> Path:
    return write_vqav2(tmp_path)


@pytest.fixture
def coco_images(tmp_path: Path) -> Path:
    """Image root holding COCO val2014 image 1 (in the val2014/ subfolder) and nothing else."""
    root = tmp_path / "coco_images"
    touch_image(root / "val2014" / "COCO_val2014_000000000001.jpg")
    return root
