"""`model-release init`: a commented starter release.yaml, filled from the adapter
(the text is templates/starter-release.yaml)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

import templates
from cards.schema import is_repo_id
from release.core.errors import InputError, MissingInputError
from release.spec.base_names import unquantized_repo
from release.spec.quant_types import DEFAULT_TYPES, QUANT_NAMES


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return slug or "my-model"


@dataclass(frozen=True)
class AdapterDefaults:
    """What adapter_config.json suggests for a release: a name and the base."""

    name: str
    base_repo_id: str | None
    """The Hub repo to merge onto: the one the adapter names, or the unquantized repo of a
    pre-quantized name (unsloth's ``-bnb-4bit``), as intake wants it."""
    base_path: str | None
    config: dict
    quantized_base: str | None = None
    """The pre-quantized repo the adapter names, when ``base_repo_id`` is its unquantized one."""


def adapter_defaults(adapter_dir: Path) -> AdapterDefaults:
    """The release name (the folder's, as a slug) and the base the adapter names: a Hub
    id, or a local folder when that is what PEFT recorded."""
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise MissingInputError(
            f"{config_path}: not found",
            hint="point `init` at the folder that PEFT's save_pretrained wrote",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{config_path}: not valid JSON ({exc})") from None
    base = str(config.get("base_model_name_or_path") or "")
    names_repo = is_repo_id(base, owner_required=True) and not Path(base).exists()
    plain = unquantized_repo(base) if names_repo else None
    return AdapterDefaults(
        name=_slug(adapter_dir.absolute().name),
        base_repo_id=(plain or base) if names_repo else None,
        base_path=base if base and not names_repo else None,
        config=config,
        quantized_base=base if plain else None,
    )


_ADAPTER = """\
adapter:
  path: {adapter}             # from adapter_config.json: {peft_type}, r={r}, alpha={alpha}
"""
_RECIPE_HEAD = """\
  # several inputs: merged by this recipe (mergekit's vocabulary, docs/merge-recipes.md);
  # merge_method: linear, task_arithmetic, ties, dare_ties, slerp (two models)…
"""


def starter_spec(inputs: Path | list[Path], spec_path: Path) -> str:
    """The text of a starter release.yaml for an adapter folder, to be saved at
    ``spec_path``; for several folders (LoRA adapters or full fine-tunes of one base), a
    merge recipe of them (``linear``, equal weights) and no ``adapter:``."""
    folders = [inputs] if isinstance(inputs, Path) else list(inputs)
    if len(folders) > 1:
        return _recipe_starter(folders, spec_path)
    adapter_dir = folders[0]
    defaults = adapter_defaults(adapter_dir)
    config = defaults.config
    if defaults.base_repo_id:
        base = {"repo_id": defaults.base_repo_id}
        base_line = f"repo_id: {_scalar(defaults.base_repo_id)}"
        if defaults.quantized_base:  # a repo id: no character of it ends the comment
            base_line += (
                f"   # the unquantized weights of {defaults.quantized_base}, "
                "the quantized base adapter_config.json names: a LoRA merges onto these"
            )
    elif defaults.base_path:
        base = {"path": defaults.base_path}
        base_line = f"path: {_scalar(defaults.base_path)}"
    else:
        base = {"repo_id": "owner/base-model"}
        base_line = "repo_id: owner/base-model   # adapter_config.json does not name its base"
    adapter = os.path.relpath(adapter_dir.absolute(), spec_path.absolute().parent)
    text = templates.read("starter-release.yaml").format(
        spec=_comment(spec_path.name),
        name=_scalar(defaults.name),
        base_line=base_line,
        inputs=_ADAPTER.format(
            adapter=_scalar(adapter),
            peft_type=_comment(config.get("peft_type", "?")),
            r=_comment(config.get("r", "?")),
            alpha=_comment(config.get("lora_alpha", "?")),
        ),
        recipe="",
        tags="lora",
        gguf_types=", ".join(DEFAULT_TYPES),
        other_gguf_types=", ".join(name for name in QUANT_NAMES if name not in DEFAULT_TYPES),
    )
    written = yaml.safe_load(text)  # what was meant is what a reader finds, nothing more
    if (written["name"], written["base"], written["adapter"]) != (
        defaults.name,
        base,
        {"path": adapter},
    ):
        raise InputError(
            f"{adapter_dir}: adapter_config.json's values do not make a valid release.yaml",
            hint="write release.yaml by hand",
        )
    return text


def _recipe_starter(folders: list[Path], spec_path: Path) -> str:
    """Several inputs: a ``merge.recipe`` of them, written by yaml.safe_dump (a folder's
    name is data, never markup) and read back before it is returned."""
    for folder in folders:
        if (
            not (folder / "adapter_config.json").is_file()
            and not (folder / "config.json").is_file()
        ):
            raise MissingInputError(
                f"{folder}: neither a PEFT adapter (adapter_config.json) nor a model folder "
                "(config.json)",
                hint="give `init` the folders save_pretrained wrote",
            )
    adapters = [f for f in folders if (f / "adapter_config.json").is_file()]
    named = [adapter_defaults(f) for f in adapters]
    found = next((d for d in named if d.base_repo_id or d.base_path), None)
    if found and found.base_repo_id:
        base, base_line = {"repo_id": found.base_repo_id}, f"repo_id: {_scalar(found.base_repo_id)}"
    elif found:
        base, base_line = {"path": found.base_path}, f"path: {_scalar(found.base_path)}"
    else:
        base = {"repo_id": "owner/base-model"}
        base_line = "repo_id: owner/base-model   # no adapter_config.json names the base"
    root = spec_path.absolute().parent
    models = [
        {"model": os.path.relpath(f.absolute(), root), "parameters": {"weight": 1.0}}
        for f in folders
    ]
    recipe = {"merge_method": "linear", "models": models}
    dumped = yaml.safe_dump({"recipe": recipe}, sort_keys=False, allow_unicode=True, width=2**31)
    block = _RECIPE_HEAD + "".join(f"  {line}\n" for line in dumped.splitlines())
    name = _slug(folders[0].absolute().name) + "-merge"
    text = templates.read("starter-release.yaml").format(
        spec=_comment(spec_path.name),
        name=_scalar(name),
        base_line=base_line,
        inputs="# no adapter: merge.recipe below names the models\n",
        recipe=block,
        tags="",
        gguf_types=", ".join(DEFAULT_TYPES),
        other_gguf_types=", ".join(n for n in QUANT_NAMES if n not in DEFAULT_TYPES),
    )
    written = yaml.safe_load(text)  # what was meant is what a reader finds, nothing more
    if (written["name"], written["base"], written["merge"].get("recipe")) != (name, base, recipe):
        raise InputError(
            f"{folders[0]}: the inputs' names do not make a valid release.yaml",
            hint="write release.yaml by hand",
        )
    return text


def _scalar(value: str) -> str:
    """``value`` as one YAML scalar, written by the emitter (quoted, escaped where it
    must be): a value read from an adapter's config is data, never markup."""
    text = yaml.safe_dump(value, width=2**31, allow_unicode=True).removesuffix("\n")
    text = text.removesuffix("\n...").removesuffix("...")
    if "\n" in text:  # folded over lines: one double-quoted line instead
        text = yaml.safe_dump(value, width=2**31, default_style='"').strip()
    return text


def _comment(value: object) -> str:
    """``value`` for a comment: a number or a plain word, else "?" (a newline in a
    comment would start a key)."""
    text = str(value)
    return text if re.fullmatch(r"[\w.+-]{1,64}", text) else "?"
