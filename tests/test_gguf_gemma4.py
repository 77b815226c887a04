"""The built-in ``gemma4`` exporter against the pinned llama.cpp converter (the sdist of
the installed llama-cpp-python, so the same llama.cpp commit as the runtime): for both
Gemma 4 fixtures (Gemma4ForCausalLM, and Gemma4ForConditionalGeneration's language
model) and every type the converter writes itself, every tensor (name, order, shape,
type, bytes) and every header key the converter writes (type and value) are equal, read
back with gguf-py's reader. Then llama.cpp loads our file and agrees with the model."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from release.gguf.architectures import unsupported_reason
from release.gguf.delegate import convert_with_llama_cpp
from release.gguf.formats import FORMATS
from release.gguf.metadata import ReleaseMetadata
from release.gguf.writer import export_gguf, open_source

pytest_plugins = ("tests.support.gguf_fixtures",)  # converter_dir: the pinned converter

FIXTURES = {
    "text": "gemma4_text_dir",
    "multimodal": "gemma4_multimodal_dir",
    "kv_shared": "gemma4_kv_shared_dir",
    "k_eq_v": "gemma4_k_eq_v_dir",
}


@pytest.fixture(scope="module")
def gemma4_kv_shared_dir(tmp_path_factory) -> Path:
    """Gemma4ForCausalLM whose last two layers reuse earlier layers' keys and values
    (``num_kv_shared_layers``, as Gemma-4-E4B's last layers do): they store no k/v."""
    from tests.support.gemma4_models import make_gemma4_text

    return make_gemma4_text(tmp_path_factory.mktemp("gemma4-kv-shared"), num_kv_shared_layers=2)


@pytest.fixture(scope="module")
def gemma4_k_eq_v_dir(tmp_path_factory) -> Path:
    """Gemma4ForCausalLM in Gemma-4-31B's form: full-attention layers use their keys as
    values (``attention_k_eq_v``: layers 1 and 3 store no v_proj)."""
    from tests.support.gemma4_models import make_gemma4_text

    folder = tmp_path_factory.mktemp("gemma4-keys-as-values")  # "-v0" would read as a version
    return make_gemma4_text(folder, attention_k_eq_v=True)


META = ReleaseMetadata(
    "tiny-gemma4",
    "0.1.0",
    license="gemma",
    base_model="google/gemma-4-E4B-it",
    base_commit="0123abcd",
    adapter_repo_id="tester/gemma4-lora",
    adapter_commit="4567ef01",
    repo_id="tester/tiny-gemma4",
    tags=["gemma4"],
    languages=["en"],
    datasets=["tester/chats"],
)
OURS_ONLY = {
    # what the converter's --metadata override cannot carry
    "general.license",  # it reads only license_name / license_link from the override
    "general.repo_url",
    "general.dataset.count",
    "general.dataset.0.name",
    "general.dataset.0.repo_url",
    "model_release.base.repo_id",
    "model_release.base.commit",
    "model_release.adapter.repo_id",
    "model_release.adapter.commit",
}


def _ours(model_dir: Path, target: Path, type_name: str) -> Path:
    for _ in export_gguf(open_source(model_dir), target, FORMATS[type_name], META):
        pass
    return target


def _theirs(converter_dir: Path, model_dir: Path, target: Path, type_name: str) -> Path:
    """The pinned converter with the override file the GGUF stage gives it, and none of
    our keys added after it (``release_keys``, tested below)."""
    script = converter_dir / "convert_hf_to_gguf.py"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("release.gguf.delegate.add_release_keys", lambda path, meta: [])
        convert_with_llama_cpp(script, model_dir, target, type_name, META)
    return target


@pytest.mark.parametrize("type_name", ["f16", "q8_0", "bf16"])
@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_byte_identical_to_the_pinned_converter(
    request, fixture, type_name, converter_dir, tmp_path
):
    model_dir = request.getfixturevalue(FIXTURES[fixture])
    ours = gguf.GGUFReader(_ours(model_dir, tmp_path / "ours.gguf", type_name))
    theirs = gguf.GGUFReader(_theirs(converter_dir, model_dir, tmp_path / "theirs.gguf", type_name))

    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    assert {t.name for t in theirs.tensors} >= {"rope_freqs.weight", "per_layer_token_embd.weight"}
    assert not any(".vision" in t.name or ".audio" in t.name for t in ours.tensors)
    for mine, their in zip(ours.tensors, theirs.tensors, strict=True):
        assert mine.tensor_type == their.tensor_type, mine.name
        assert list(mine.shape) == list(their.shape), mine.name
        assert mine.data.tobytes() == their.data.tobytes(), mine.name
    expected_type = {"f16": "F16", "q8_0": "Q8_0", "bf16": "BF16"}[type_name]
    assert ours.get_tensor(1).tensor_type.name == expected_type  # token_embd

    keys = [key for key in theirs.fields if not key.startswith("GGUF.")]
    for key in keys:
        mine, their = ours.get_field(key), theirs.get_field(key)
        assert mine is not None, f"{key} missing"
        assert mine.types == their.types, key
        assert mine.contents() == their.contents(), key
    extra = [key for key in ours.fields if not key.startswith("GGUF.") and key not in keys]
    assert set(extra) == OURS_ONLY
    # the model's keys in the converter's order (general.* are in ours)
    model_keys = [k for k in keys if not k.startswith("general.")]
    assert [k for k in ours.fields if k in model_keys] == model_keys


def test_what_the_header_says(gemma4_multimodal_dir, tmp_path):
    """Values read from the fixture's config, not from either exporter: sliding and full
    layers' head dims, the pattern, the proportional rope's frequency factors."""
    reader = gguf.GGUFReader(_ours(gemma4_multimodal_dir, tmp_path / "ours.gguf", "f16"))

    def field(key):
        return reader.get_field(key).contents()

    assert field("tokenizer.ggml.model") == "gemma4"
    assert field("gemma4.attention.sliding_window_pattern") == [True, False, True, False]
    assert field("gemma4.attention.key_length") == 32  # global_head_dim
    assert field("gemma4.attention.key_length_swa") == 16  # head_dim
    assert field("gemma4.embedding_length_per_layer_input") == 16
    assert field("gemma4.final_logit_softcapping") == 30.0
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    assert types[tokens.index("<|channel>")] == gguf.TokenType.USER_DEFINED  # visible
    assert types[tokens.index("<turn|>")] == gguf.TokenType.CONTROL
    rope = next(t for t in reader.tensors if t.name == "rope_freqs.weight")
    # head dim 32, partial_rotary_factor 0.25: 4 of 16 pairs rotate
    assert rope.data.tolist() == [1.0] * 4 + [pytest.approx(1e30)] * 12


@pytest.mark.parametrize("fixture", ["multimodal", "kv_shared", "k_eq_v"])
def test_llama_cpp_loads_ours_and_agrees(request, fixture, tmp_path):
    from release.gguf.agreement import llama_cpp_check, reference_probe

    model_dir = request.getfixturevalue(FIXTURES[fixture])
    probe = reference_probe(model_dir)
    for type_name, least in (("f16", 0.99), ("q8_0", FORMATS["q8_0"].min_top1)):
        path = _ours(model_dir, tmp_path / f"{type_name}.gguf", type_name)
        result = llama_cpp_check(path, probe)
        assert result.tokenizer_agrees is True
        if type_name == "f16":
            assert result.agreement.top1_agreement >= least
        assert result.agreement.confident_top1_agreement >= least


def test_the_moe_variant_goes_to_the_converter():
    config = {"architectures": ["Gemma4ForCausalLM"], "enable_moe_block": True}
    assert "mixture-of-experts" in unsupported_reason(config)


def test_converter_files_get_the_release_keys(gemma4_text_dir, converter_dir, tmp_path):
    """A file the converter wrote gets the keys it cannot take (our model_release.* pins,
    the license, the release's repo and datasets); nothing it wrote changes, and
    llama.cpp still loads it."""
    from release.gguf.agreement import llama_cpp_check, reference_probe
    from release.gguf.release_keys import add_release_keys
    from tests.support.gguf_helpers import llama_cpp_convert

    raw = llama_cpp_convert(converter_dir, gemma4_text_dir, tmp_path / "raw.gguf", "q8_0")
    path = tmp_path / "keyed.gguf"
    path.write_bytes(raw.read_bytes())
    added = add_release_keys(path, META)
    assert set(added) >= {"model_release.base.commit", "model_release.adapter.commit"}
    assert add_release_keys(path, META) == []  # once only
    assert not list(tmp_path.glob(".keyed.gguf.*"))  # nothing staged is left
    before, after = gguf.GGUFReader(raw), gguf.GGUFReader(path)
    assert after.get_field("model_release.base.commit").contents() == META.base_commit
    assert after.get_field("model_release.adapter.repo_id").contents() == META.adapter_repo_id
    assert after.get_field("general.license").contents() == "gemma"
    assert list(after.fields) == [*before.fields, *added]
    for key in before.fields:
        if not key.startswith("GGUF."):
            assert after.get_field(key).contents() == before.get_field(key).contents(), key
    for old, new in zip(before.tensors, after.tensors, strict=True):
        assert (old.name, old.tensor_type) == (new.name, new.tensor_type)
        assert old.data.tobytes() == new.data.tobytes(), old.name
    probe = reference_probe(gemma4_text_dir)
    result = llama_cpp_check(path, probe)
    assert result.agreement.confident_top1_agreement >= FORMATS["q8_0"].min_top1


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_size_estimate_is_the_file_size(request, fixture, tmp_path):
    """The preflight's plan (``needs.gguf_file_bytes`` with the release's keys): the
    header measured by writing it, every tensor's data padded to the alignment."""
    from release.gguf.needs import gguf_file_bytes

    model_dir = request.getfixturevalue(FIXTURES[fixture])
    estimates = gguf_file_bytes(model_dir, ["f16", "q8_0", "bf16"], META)
    for type_name, planned in estimates.items():
        written = _ours(model_dir, tmp_path / f"{type_name}.gguf", type_name).stat().st_size
        assert abs(planned / written - 1) <= 0.001, type_name  # measured: 0 bytes apart


K_QUANTS = ("q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k")


@pytest.fixture(scope="module")
def wide_gemma4_dir(tmp_path_factory) -> Path:
    """Gemma 4 with rows of whole 256-weight blocks (the fixtures' 64-wide rows make
    every K type fall back to a 32-weight one, so the mixes' own rules do not show)."""
    from tests.support.gemma4_models import make_gemma4_text

    return make_gemma4_text(
        tmp_path_factory.mktemp("gemma4-wide"),
        hidden_size=256,
        intermediate_size=512,
        hidden_size_per_layer_input=64,
    )


@pytest.mark.parametrize("fixture", ["gemma4_multimodal_dir", "wide_gemma4_dir"])
def test_k_quants_through_llama_cpps_quantizer(request, fixture, tmp_path):
    """Our f16 file, quantized by llama.cpp: each tensor in the type the preflight
    predicts (Gemma 4's per-layer projection stays f16, its per-layer embedding goes to
    q6_k like the head), the size estimate exact, and q4_k_m runs in llama.cpp."""
    from release.gguf.agreement import llama_cpp_check, reference_probe
    from release.gguf.kquant import quantize_with_llama_cpp
    from release.gguf.needs import gguf_file_bytes
    from tests.test_gguf_sizes import llama_cpp_tensor_types, predicted_types

    model_dir = request.getfixturevalue(fixture)
    f16 = _ours(model_dir, tmp_path / "f16.gguf", "f16")
    estimates = gguf_file_bytes(model_dir, K_QUANTS, META)
    for type_name in K_QUANTS:
        path = tmp_path / f"{type_name}.gguf"
        quantize_with_llama_cpp(f16, path, FORMATS[type_name])
        assert llama_cpp_tensor_types(path) == predicted_types(model_dir, type_name)
        assert abs(estimates[type_name] / path.stat().st_size - 1) <= 0.001, type_name
    result = llama_cpp_check(tmp_path / "q4_k_m.gguf", reference_probe(model_dir))
    assert result.tokenizer_agrees is True
    assert result.agreement.confident_top1_agreement >= FORMATS["q4_k_m"].min_top1


def test_converter_files_are_measured_before_they_are_written(
    gemma4_multimodal_dir, converter_dir, tmp_path
):
    """What the converter writes (the projector; a text model not built in), sized by
    the converter itself run up to its first tensor's data, then written for real."""
    from release.gguf.converter_plan import converter_file_bytes

    script = converter_dir / "convert_hf_to_gguf.py"
    for mmproj, type_name in ((True, "f16"), (False, "q8_0")):
        planned = converter_file_bytes(
            script, gemma4_multimodal_dir, type_name, META, mmproj=mmproj
        )
        path = tmp_path / f"{mmproj}-{type_name}.gguf"
        convert_with_llama_cpp(script, gemma4_multimodal_dir, path, type_name, META, mmproj=mmproj)
        assert planned == path.stat().st_size, (mmproj, type_name)


def test_the_gguf_card_shows_what_each_gemma4_file_loses(gemma4_text_dir, tmp_path):
    """As on the demo: the GGUF stage measures each file on the held-out text against
    the merged model (its reference computed beside the export, chunks as
    llama-perplexity cuts them), and the GGUF card's file table carries each file's KLD
    mean and 99%, same top-1 and PPL ratio, "Recommended" on the smallest."""
    from cards.render import render_gguf_card
    from cards.spec import load_context
    from release.core.manifest import Manifest, StageRecord
    from release.core.relay import finish
    from release.gguf.build import build_gguf_files
    from release.gguf.settings import GGUFSettings
    from release.report.card_context import card_facts
    from release.spec.schema import ReleaseSpec
    from tests.support.reporters import SilentReporter
    from tests.test_cards_render import BASELINE, DEMO, RESULTS

    spec = ReleaseSpec(
        name="tiny-gemma4",
        version="1.0",
        base={"path": str(gemma4_text_dir)},
        adapter={"path": str(gemma4_text_dir)},
        workspace=tmp_path,
        gguf={"types": ["f16", "q8_0"]},
    )
    build = build_gguf_files(
        GGUFSettings.of(spec), gemma4_text_dir, tmp_path, SilentReporter("gguf")
    )
    facts = finish(build).facts
    manifest = Manifest(name="tiny-gemma4", version="1.0")
    manifest.stages["gguf"] = StageRecord(key="g", finished_at="", seconds=0, facts=facts.as_json())
    rows = card_facts(manifest).gguf_files
    assert [row.type for row in rows] == ["f16", "q8_0"]
    for file, row in zip(facts.files, rows, strict=True):
        quality = file.quality
        assert quality.tokens > 0 and quality.chunk == 512
        assert 0 <= quality.kld_median <= quality.kld_mean <= quality.kld_p99 <= quality.kld_max
        assert 0.5 < quality.same_top1 <= 1
        assert row.loss.kld_mean == quality.kld_mean and row.loss.ppl_ratio == quality.ppl_ratio
    # f16 loses less than q8_0; the smaller q8_0 is under the limit, so recommended
    f16, q8 = (file.quality for file in facts.files)
    assert f16.kld_mean < q8.kld_mean and [row.recommended for row in rows] == [False, True]
    demo = load_context(DEMO / "card.yaml", RESULTS, BASELINE, DEMO / "facts.json")
    card = render_gguf_card(demo.model_copy(update={"facts": card_facts(manifest)}))
    assert "| KLD mean | KLD 99% | Same top-1 | PPL ratio |" in card
    assert (
        f"| {q8.kld_mean:.4f} | {q8.kld_p99:.4f} | {q8.same_top1:.1%} | {q8.ppl_ratio:.3f} |"
        in card
    )
