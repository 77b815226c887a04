"""The merged model folder, read the way a streaming exporter needs it.

``list_tensors`` reads only the safetensors headers (names, shapes, dtypes), so the whole
GGUF layout can be planned before any weight is loaded; ``load`` then brings in one
tensor at a time from the memory-mapped files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass(frozen=True)
class SourceTensor:
    name: str
    shape: tuple[int, ...]
    file: Path


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json, with a multimodal wrapper's ``text_config`` lifted to the top."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    return config


def weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    single = model_dir / SINGLE_NAME
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{model_dir}: no {SINGLE_NAME} or {INDEX_NAME}")


def list_tensors(model_dir: Path) -> list[SourceTensor]:
    from safetensors import safe_open

    found = []
    for path in weight_files(model_dir):
        with safe_open(path, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                shape = tuple(handle.get_slice(name).get_shape())
                found.append(SourceTensor(name, shape, path))
    return found


class TensorLoader:
    """Opens each weight file once; ``load`` returns one tensor as float32 numpy, the
    precision llama.cpp's converter quantizes from (so our bytes can match its)."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._handles: dict[Path, Any] = {}

    def __enter__(self) -> TensorLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def load(self, tensor: SourceTensor) -> np.ndarray:
        from safetensors import safe_open

        handle = self._handles.get(tensor.file)
        if handle is None:
            handle = self._stack.enter_context(safe_open(tensor.file, framework="pt"))
            self._handles[tensor.file] = handle
        return handle.get_tensor(tensor.name).float().numpy()


def iter_loaded(tensors: list[SourceTensor]) -> Iterator[tuple[SourceTensor, np.ndarray]]:
    with TensorLoader() as loader:
        for tensor in tensors:
            yield tensor, loader.load(tensor)
