"""The architectures the built-in exporter knows, and each one's quirks, in one table.

A quirk is data here, not a branch somewhere else: whether q/k rows are permuted for
llama.cpp's rotary layout, whether norm weights are stored with an offset (Gemma keeps
``w`` where llama.cpp wants ``1 + w``) and which extra hyper-parameters go into the
header. A tied head needs no entry: the checkpoint holds no ``lm_head.weight`` and
llama.cpp reads the token embeddings in its place. The facts come from reading
llama.cpp's own converter (convert_hf_to_gguf.py) and gguf-py's constants; the code is
ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from release.gguf import gemma4
from release.gguf.vocab import Vocab, gemma4_vocab, read_vocab

Config = dict[str, Any]
HParamWriter = Callable[[Config, gguf.GGUFWriter], None]
VocabReader = Callable[[Path, int], Vocab]


def _no_extras(config: Config, writer: gguf.GGUFWriter) -> None:
    return None


def _llama_extras(config: Config, writer: gguf.GGUFWriter) -> None:
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim(config))


def _same_name(name: str) -> str:
    return name


def _all_rows(model_dir: Path, name: str) -> int | None:
    return None


def _no_tensors(config: Config) -> list[tuple[str, np.ndarray]]:
    return []


def _no_problem(config: Config) -> str | None:
    return None


def _gemma3_extras(config: Config, writer: gguf.GGUFWriter) -> None:
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    if config.get("sliding_window_pattern") != 1:
        writer.add_sliding_window(config["sliding_window"])


@dataclass(frozen=True)
class Architecture:
    arch: gguf.MODEL_ARCH
    hf_classes: tuple[str, ...]
    permute_qk: bool = False
    """HF keeps the two rotary halves of each head apart; llama.cpp's llama kernels want
    them interleaved, so q_proj/k_proj rows are permuted on the way out."""
    norm_offset: float = 0.0
    """Added to every ``*norm.weight``: Gemma's RMSNorm multiplies by ``1 + w``,
    llama.cpp's by ``w``."""
    sentencepiece_space_prefix: bool | None = None
    """With a SentencePiece tokenizer, whether llama.cpp adds a leading space (Gemma's
    tokenizer does not); None: llama.cpp's default."""
    extras: HParamWriter = _no_extras
    """Header keys beyond the common ones."""
    hparams: HParamWriter | None = None
    """All the header keys, in place of the common ones and ``extras`` (an architecture
    whose keys llama.cpp's converter writes in an order of its own)."""
    vocab: VocabReader = read_vocab
    """The tokenizer as GGUF metadata (default: by the tokenizer's files)."""
    hf_name: Callable[[str], str] = _same_name
    """The checkpoint name as gguf-py's tensor map knows it."""
    kept_rows: Callable[[Path, str], int | None] = _all_rows
    """How many leading rows of a tensor are written (None: all)."""
    extra_tensors: Callable[[Config], list[tuple[str, np.ndarray]]] = _no_tensors
    """Tensors computed from the config, written before the checkpoint's."""
    unsupported: Callable[[Config], str | None] = _no_problem
    """What of a config of this architecture is not built in (None: nothing)."""

    @property
    def name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        gguf.MODEL_ARCH.LLAMA,
        ("LlamaForCausalLM", "MistralForCausalLM"),
        permute_qk=True,
        extras=_llama_extras,
    ),
    Architecture(gguf.MODEL_ARCH.QWEN2, ("Qwen2ForCausalLM",)),
    Architecture(gguf.MODEL_ARCH.QWEN3, ("Qwen3ForCausalLM",)),
    Architecture(
        gguf.MODEL_ARCH.GEMMA3,
        ("Gemma3ForCausalLM",),
        norm_offset=1.0,
        sentencepiece_space_prefix=False,
        extras=_gemma3_extras,
    ),
    Architecture(
        gguf.MODEL_ARCH.GEMMA4,
        ("Gemma4ForCausalLM", "Gemma4ForConditionalGeneration"),
        hparams=gemma4.write_hparams,
        vocab=gemma4_vocab,
        hf_name=gemma4.hf_name,
        kept_rows=gemma4.kept_rows,
        extra_tensors=gemma4.extra_tensors,
        unsupported=gemma4.unsupported_reason,
    ),
)


def supported_classes() -> list[str]:
    return [cls for arch in ARCHITECTURES for cls in arch.hf_classes]


def find_architecture(config: Config) -> Architecture | None:
    """The registry entry for ``config``'s ``architectures[0]``, or None."""
    classes = config.get("architectures") or []
    for arch in ARCHITECTURES:
        if classes and classes[0] in arch.hf_classes:
            return arch
    return None


def unsupported_reason(config: Config) -> str | None:
    """Why the built-in exporter cannot write ``config`` faithfully (None: it can)."""
    arch = find_architecture(config)
    if arch is None:
        classes = config.get("architectures") or ["(none)"]
        return f"architecture {classes[0]} is not built in"
    if arch.hparams is not None:  # its own header writer, its own rules
        return arch.unsupported(config)
    rope_type = rope_parameters(config).get("rope_type", "default")
    if rope_type not in ("default", "linear", "yarn"):
        return f"rope scaling {rope_type!r} is not built in"
    if config.get("num_local_experts") or config.get("num_experts"):
        return "mixture-of-experts layers are not built in"
    return None


def gguf_arch(config: Config) -> gguf.MODEL_ARCH | None:
    """The GGUF architecture llama.cpp's converter writes for a (text) config, by its
    ``model_type`` (a multimodal wrapper's text model: ``gemma4_text`` is ``gemma4``);
    None where gguf-py has no architecture of that name."""
    arches = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    return arches.get(str(config.get("model_type", "")).removesuffix("_text"))


def head_dim(config: Config) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def rope_parameters(config: Config) -> Config:
    """The full-attention layers' rope: transformers 5 writes ``rope_parameters`` (per
    layer type where layers differ); older configs ``rope_theta`` and ``rope_scaling``."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    params = dict(params.get("full_attention", params))  # per layer type (Gemma 3)
    params.setdefault("rope_theta", config.get("rope_theta"))
    if "type" in params:
        params.setdefault("rope_type", params["type"])
    return params


def write_hparams(arch: Architecture, config: Config, writer: gguf.GGUFWriter) -> None:
    """The header keys llama.cpp reads to build the graph."""
    if arch.hparams is not None:
        arch.hparams(config, writer)
        return
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads", config["num_attention_heads"]))
    _write_rope(rope_parameters(config), writer)
    sliding = (config.get("rope_parameters") or {}).get("sliding_attention")
    if sliding and sliding.get("rope_theta") is not None:
        writer.add_rope_freq_base_swa(sliding["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    if "head_dim" in config:
        writer.add_key_length(config["head_dim"])
        writer.add_value_length(config["head_dim"])
    arch.extras(config, writer)


def _write_rope(params: Config, writer: gguf.GGUFWriter) -> None:
    rope_type, factor = params.get("rope_type"), params.get("factor")
    if rope_type == "linear" and factor is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(factor)
    elif rope_type == "yarn" and factor is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(factor)
        writer.add_rope_scaling_orig_ctx_len(params["original_max_position_embeddings"])
    if params.get("rope_theta") is not None:
        writer.add_rope_freq_base(params["rope_theta"])


def permute_rows(rows: Any, n_head: int) -> Any:
    """Interleave the two rotary halves of each head's rows (numpy array, any dtype)."""
    shape = rows.shape
    return (
        rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )
