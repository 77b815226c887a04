"""What the folders declare that rules a merge out, checked before any tensor is read.

- A quantized base (QLoRA: bitsandbytes 4-bit, a pre-quantized ``-bnb-4bit`` repo, or
  any ``quantization_config``) stores packed integer weights; adding a LoRA delta to
  them would write garbage. The merge needs the unquantized base the adapter was
  trained against, named in the spec; or, with ``base.dequantize: true``, bitsandbytes'
  4-bit weights dequantized (``release.checkpoint.dequantize``), which keep their 4-bit
  rounding, so that merge differs from one onto the full-precision base.
- The tokenizer's EOS and generation_config's stop tokens must agree: a trainer that
  rewrites one and not the other ships a model that never stops (or stops at once) in
  every runtime that reads the other file; llama.cpp's GGUF keeps the tokenizer's.
- A base with its own Python code (``auto_map`` in config.json) runs that code when
  loaded and ships it with the merged model: only with ``base.trust_remote_code``.
- The adapter's ``target_modules`` must name modules of the base (PEFT refuses to load
  it otherwise, after the merge), and the chat template that ships must compile in
  Jinja's sandbox, as transformers runs it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from release.checkpoint.dequantize import FOUR_BIT_TYPES, STATE_MARKER
from release.checkpoint.safetensors import TensorInfo
from release.core.errors import InputError
from release.spec.base_names import unquantized_repo

_BNB_MARKER = STATE_MARKER
"""bitsandbytes' per-weight state tensors (``….weight.quant_state.bitsandbytes__nf4``)."""
_INT8_MARKER = ".SCB"
"""bitsandbytes' 8-bit weights keep their scales in ``….weight.SCB``."""


def _quantization(config: dict[str, Any], base: dict[str, TensorInfo]) -> str | None:
    """How the base is quantized, in words, or None."""
    quant = config.get("quantization_config")
    if not isinstance(quant, dict):
        text = config.get("text_config")
        quant = text.get("quantization_config") if isinstance(text, dict) else None
    packed = [name for name in base if _BNB_MARKER in name]
    if isinstance(quant, dict):
        method = str(quant.get("quant_method", "unknown method"))
        if method == "bitsandbytes":
            bits = (
                "4-bit"
                if quant.get("load_in_4bit") or quant.get("bnb_4bit_quant_type")
                else "8-bit"
            )
            kind = quant.get("bnb_4bit_quant_type")
            method = f"bitsandbytes {bits}" + (f" {kind}" if kind else "")
        found = f"config.json has a quantization_config ({method})"
        return found + (f", {len(packed)} packed weights" if packed else "")
    if packed:
        kind = packed[0].rsplit("__", 1)[-1]
        return f"{len(packed)} weights are packed by bitsandbytes ({kind})"
    return None


def _dequantizable(config: dict[str, Any], base: dict[str, TensorInfo]) -> bool:
    """Whether ``release.checkpoint.dequantize`` can turn the base into float weights:
    every packed weight is bitsandbytes 4-bit (nf4/fp4), none is 8-bit, and a
    quantization_config, if any, is bitsandbytes' (a config alone packs nothing)."""
    kinds = {name.rsplit("__", 1)[-1] for name in base if _BNB_MARKER in name}
    quant = config.get("quantization_config")
    method = quant.get("quant_method") if isinstance(quant, dict) else "bitsandbytes"
    int8 = any(name.endswith(_INT8_MARKER) for name in base)
    return method == "bitsandbytes" and kinds <= set(FOUR_BIT_TYPES) and not int8


def check_quantized(
    label: str,
    config: dict[str, Any],
    base: dict[str, TensorInfo],
    repo_id: str | None,
    *,
    dequantize: bool = False,
) -> str | None:
    """None for a base of plain float weights. For a quantized one: what was found, in
    words, when the spec opts into dequantizing it (``base.dequantize``) and it can be;
    otherwise a one-line error."""
    found = _quantization(config, base)
    if found is None:
        return None
    if dequantize and _dequantizable(config, base):
        return found
    if dequantize:
        raise InputError(
            f"base {label} is quantized: {found}; base.dequantize reads bitsandbytes 4-bit "
            "(nf4, fp4) weights only",
            hint="set base.repo_id (or base.path) to the unquantized base the adapter was "
            "trained on",
        )
    plain = unquantized_repo(repo_id) if repo_id else None
    unquantized = f" (for {repo_id}: {plain})" if plain else ""
    raise InputError(
        f"base {label} is quantized: {found}; a LoRA cannot be merged into packed weights",
        hint="set base.repo_id (or base.path) to the unquantized base the adapter was "
        f"trained on{unquantized}, the usual way to release a QLoRA adapter; or set "
        "base.dequantize: true to merge onto its dequantized 4-bit weights, the ones it "
        "was trained against (the merged model then keeps their 4-bit rounding)",
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _token_id(tokenizer_dir: Path, token: str) -> int | None:
    """``token``'s id in tokenizer.json (added tokens first, then the model's vocab)."""
    data = _read_json(tokenizer_dir / "tokenizer.json") or {}
    for entry in data.get("added_tokens") or []:
        if entry.get("content") == token:
            return entry.get("id")
    vocab = (data.get("model") or {}).get("vocab")
    return vocab.get(token) if isinstance(vocab, dict) else None


def check_stop_tokens(tokenizer_dir: Path, generation_dir: Path) -> None:
    """A one-line error when tokenizer_config.json's EOS is not one of
    generation_config.json's ``eos_token_id``s (the files the merged folder will hold)."""
    tokenizer_config = _read_json(tokenizer_dir / "tokenizer_config.json")
    generation = _read_json(generation_dir / "generation_config.json")
    if not tokenizer_config or not generation or generation.get("eos_token_id") is None:
        return
    eos = tokenizer_config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    if not isinstance(eos, str):
        return
    eos_id = _token_id(tokenizer_dir, eos)
    stops = generation["eos_token_id"]
    stops = stops if isinstance(stops, list) else [stops]
    if eos_id is None or eos_id in stops:
        return
    raise InputError(
        f"{tokenizer_dir / 'tokenizer_config.json'}: eos_token {eos!r} (id {eos_id}) is not "
        f"among {generation_dir / 'generation_config.json'}'s eos_token_id {stops}",
        hint="make them agree (the trainer rewrote one of them): set eos_token to the base's, "
        "or add its id to generation_config.json's eos_token_id",
    )


def check_remote_code(base_dir: Path, config: dict[str, Any], trusted: bool) -> None:
    """Refuse a base that ships Python code (``auto_map``) unless the spec opts in."""
    if "auto_map" in config and not trusted:
        raise InputError(
            f"{base_dir / 'config.json'}: auto_map: the base runs its own Python code when "
            "loaded, and that code would ship with the merged model",
            hint="read that code; if you trust it, set base.trust_remote_code: true",
        )


def check_target_modules(target_modules: list[str] | str, base: dict[str, TensorInfo], path: Path):
    """Refuse ``target_modules`` that match no module of the base, as PEFT matches them
    (a regex against a module's name, or a name or the end of one)."""
    if not target_modules or target_modules == "all-linear":
        return
    modules = {name.rsplit(".", 1)[0] for name in base}
    if isinstance(target_modules, str):
        pattern = re.compile(target_modules)
        suffixes = {m.split(".", i)[-1] for m in modules for i in range(m.count(".") + 1)}
        found = any(pattern.fullmatch(name) for name in suffixes)
    else:
        found = any(m == t or m.endswith("." + t) for m in modules for t in target_modules)
    if not found:
        raise InputError(
            f"{path}: target_modules {target_modules!r} matches no module of the base",
            hint="check that base is the model the adapter was trained on",
        )


def check_chat_template(tokenizer_dir: Path) -> None:
    """Compile and render the chat template that ships, in Jinja's sandbox as transformers
    runs it: a template that trips the sandbox or does not parse is refused, naming it."""
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError, TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    for where, template in _chat_templates(tokenizer_dir):
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        try:
            env.from_string(template).render(
                messages=[{"role": "user", "content": "Hello"}],
                add_generation_prompt=True,
                bos_token="<s>",
                eos_token="</s>",
                raise_exception=_ignore,
            )
        except (SecurityError, TemplateSyntaxError) as error:
            raise InputError(
                f"{where}: the chat template is refused by Jinja's sandbox: {error}",
                hint="fix the template (transformers renders it in the same sandbox)",
            ) from None
        except (TemplateError, TypeError, ValueError, LookupError, AttributeError):
            pass  # a template that wants other messages (a system turn, tools) is not ours


def _ignore(message: str) -> str:
    return ""


def _chat_templates(folder: Path) -> list[tuple[str, str]]:
    """Each chat template a tokenizer folder ships, with where it is."""
    found = []
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        found.append((str(jinja), jinja.read_text(encoding="utf-8", errors="replace")))
    for name in ("chat_template.json", "tokenizer_config.json"):
        data = _read_json(folder / name)
        value = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(value, str):
            found.append((f"{folder / name}: chat_template", value))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("template"), str):
                    found.append((f"{folder / name}: chat_template", item["template"]))
    return found
