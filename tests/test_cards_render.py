"""Rendered cards, read back by huggingface_hub."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from typer.testing import CliRunner

from cards.cli import app as card_app
from cards.errors import CardError
from cards.evals import dataset_label
from cards.lint import lint_card
from cards.measured import GGUFBuildFacts, MeasuredFacts
from cards.render import CardContext, card_kind, render_gguf_card, render_model_card
from cards.schema import CardMetadata
from cards.spec import load_context

SAMPLES = Path(__file__).parent / "cards_samples"
RESULTS = sorted(SAMPLES.glob("results_*.json"))
BASELINE = [SAMPLES / "base_results_2026-02-28T10-00-00.000000.json"]
DEMO = SAMPLES / "demo"


@pytest.fixture
def demo() -> CardContext:
    return load_context(DEMO / "card.yaml", RESULTS, BASELINE, DEMO / "facts.json")


def test_demo_card_round_trips_through_huggingface_hub(demo, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(render_model_card(demo))
    card = ModelCard.load(readme)
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.base_model_relation == "adapter"
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "smollm2-135m-demo-lora"
    got = {(r.dataset_name, r.metric_type, r.metric_config): r.metric_value for r in results}
    want = {
        (dataset_label(r), r.metric, None if r.filter == "none" else r.filter): r.value
        for r in demo.records
    }
    assert got == want and len(got) == 9
    assert CardMetadata.from_model_card_data(card.data).model_index is not None


def test_demo_card_shows_measured_facts_and_passes_its_own_lint(demo):
    text = render_model_card(demo)
    facts = json.loads((DEMO / "facts.json").read_text())
    assert "| Parameters | 134.5M (134,515,008) |" in text
    assert "| Merged model size | 269.1 MB (269,060,552 bytes) |" in text
    assert "| LoRA rank (r) | 8 |" in text and "| LoRA alpha | 16 |" in text
    assert "| Target modules | `q_proj`, `v_proj` |" in text
    assert f"| Base model revision | `{facts['base_revision']}` |" in text
    # the base model's score beside each, and this model's less the base's
    assert (
        "| arc_easy | acc | 0 | 0.5896 | ± 0.0101 | 0.5547 | +0.0349 | results_2026-03-03" in text
    )
    assert 'PeftModel.from_pretrained(base_model, "demo-org/smollm2-135m-demo-lora")' in text
    # the GGUF file named is one the release measured (facts.json), the first of them
    assert "hf download demo-org/smollm2-135m-demo-GGUF smollm2-135m-demo-Q8_0.gguf" in text
    assert "llama-cli -m smollm2-135m-demo-Q8_0.gguf" in text
    assert "@inproceedings{hu2022lora," in text and "@misc{eval-harness," in text
    assert lint_card(text) == []


def test_different_n_shot_in_a_comparison_is_flagged(demo):
    text = render_model_card(demo)
    assert "| hellaswag | acc | 0 | 0.3419 | ± 0.0047 | 0.3392† | +0.0027† |" in text
    assert "> - hellaswag acc: 0-shot here, 10-shot for the base model" in text
    plain = render_model_card(demo.model_copy(update={"baseline": []}))
    assert "†" not in plain and "Base model |" not in plain and "Difference" not in plain


def test_missing_facts_leave_no_row_and_no_none():
    ctx = CardContext(
        metadata=CardMetadata(license="mit", base_model=["a/b"]),
        repo_id="me/adapter",
        facts={"lora": {"r": 16, "target_modules": None}, "dtype": "float16"},
    )
    text = render_model_card(ctx)
    assert "None" not in text and "null" not in text
    assert "| Weights dtype | `float16` |" in text and "| LoRA rank (r) | 16 |" in text
    for absent in ("Parameters", "Target modules", "## Evaluation", "## Citation\n\n```bibtex\n\n"):
        assert absent not in text
    assert "model-index" not in text


def test_gguf_card_lists_files_and_is_a_quantized_child(demo, tmp_path):
    merged = demo.model_copy(update={"repo_id": "demo-org/smollm2-135m-demo"})
    readme = tmp_path / "README.md"
    readme.write_text(render_gguf_card(merged))
    card = ModelCard.load(readme)
    assert card.data.base_model == "demo-org/smollm2-135m-demo"
    assert card.data.base_model_relation == "quantized"
    assert card.data.eval_results is None and "gguf" in card.data.tags
    assert (
        "| `smollm2-135m-demo-Q8_0.gguf` | `Q8_0` | 144.8 MB (144,811,872 bytes) "
        "| `5f1e4c3b2a1908f7…` | 98.71% | 0.412 |" in card.text
    )
    assert "ollama run hf.co/demo-org/smollm2-135m-demo-GGUF:Q8_0" in card.text
    assert 'Llama.from_pretrained(repo_id="demo-org/smollm2-135m-demo-GGUF"' in card.text
    assert "eval-harness" not in card.text


def test_gguf_card_needs_gguf_facts(demo):
    with pytest.raises(CardError, match="gguf_files"):
        render_gguf_card(demo.model_copy(update={"facts": MeasuredFacts()}))


def test_user_templates_override_one_file_and_keep_the_rest(demo, tmp_path):
    (tmp_path / "model_card.md.j2").write_text(
        '{% import "_macros.md.j2" as m with context %}'
        "# {{ name }} by us\n\n{{ facts.merged_bytes | size }}\n\n{{ m.license_section() }}\n"
    )
    text = render_model_card(demo, template_dir=tmp_path)
    assert "# smollm2-135m-demo-lora by us" in text
    assert "\n269.1 MB (269,060,552 bytes)\n" in text
    assert "Released under the `apache-2.0` license." in text
    assert "GGUF files of" in render_gguf_card(demo, template_dir=tmp_path)


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ parameter_count }}", "'parameter_count' is undefined"),
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{% if %}", "model_card.md.j2:1: template error"),
    ],
)
def test_templates_are_strict_and_sandboxed(demo, tmp_path, template, words):
    (tmp_path / "model_card.md.j2").write_text(template)
    with pytest.raises(CardError, match="template error") as info:
        render_model_card(demo, template_dir=tmp_path)
    assert words in str(info.value)


def test_cards_never_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cards.cli import app\n"
        f"args = ['build', '--metadata', {str(DEMO / 'card.yaml')!r}, "
        f"'--facts', {str(DEMO / 'facts.json')!r}, '--results', {str(RESULTS[0])!r}, "
        "'--output', sys.argv[1]]\n"
        "assert CliRunner().invoke(app, args).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['check', sys.argv[1]]).exit_code == 0\n"
        "heavy = {'torch', 'transformers', 'peft'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "README.md")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_front_matter_is_byte_for_byte_what_huggingface_hub_writes(demo):
    # ModelCard.content re-dumps the parsed metadata with huggingface_hub's own YAML
    # writer; our libyaml dump must produce the very same text.
    for text in (render_model_card(demo), render_gguf_card(demo)):
        assert ModelCard(text).content == text


KINDS = {
    # (base_model_relation, library_name, extra metadata): (prose, usage snippet)
    "adapter": (
        ("adapter", "peft", {}),
        "LoRA adapter of the base model [HuggingFaceTB/SmolLM2-135M-Instruct]",
        'model = PeftModel.from_pretrained(base_model, "demo-org/m")',
    ),
    "finetune": (
        ("finetune", "transformers", {}),
        "Fine-tune of the base model [HuggingFaceTB/SmolLM2-135M-Instruct]"
        "(https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct), with its LoRA adapter "
        "merged into the weights: a full model, loaded without PEFT.",
        'model = AutoModelForCausalLM.from_pretrained("demo-org/m")',
    ),
    "merge": (
        ("merge", "transformers", {"base_model": ["a-org/one", "b-org/two"]}),
        "Merge of the models [a-org/one](https://huggingface.co/a-org/one), "
        "[b-org/two](https://huggingface.co/b-org/two): a full model",
        'model = AutoModelForCausalLM.from_pretrained("demo-org/m")',
    ),
    "quantized": (
        ("quantized", "transformers", {}),
        "Quantized version of [HuggingFaceTB/SmolLM2-135M-Instruct]",
        'AutoModelForCausalLM.from_pretrained("demo-org/m", device_map="auto")',
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_card_build_takes_the_kind_from_card_yaml(tmp_path, kind):
    """base_model_relation and library_name in card.yaml decide prose and usage (issue 17:
    a full model's card said "LoRA adapter" and showed a PeftModel snippet)."""
    (relation, library, extra), prose, snippet = KINDS[kind]
    spec = yaml.safe_load((DEMO / "card.yaml").read_text())
    spec |= {"repo_id": "demo-org/m", "base_model_relation": relation, "library_name": library}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(spec | extra))
    build = ["build", "--metadata", str(tmp_path / "card.yaml")]
    build += ["--facts", str(DEMO / "facts.json"), "--output", str(tmp_path / "README.md")]
    result = CliRunner().invoke(card_app, build)
    assert result.exit_code == 0, result.output
    card = ModelCard.load(tmp_path / "README.md")
    assert (card.data.base_model_relation, card.data.library_name) == (relation, library)
    assert prose in card.text and snippet in card.text
    others = [s for k, (_, _, s) in KINDS.items() if s != snippet and k != kind]
    assert not any(other in card.text for other in others)
    assert ("PeftModel" in card.text) == (kind == "adapter")
    assert ("LoRA adapter of" in card.text) == (kind == "adapter")


def test_without_a_relation_peft_means_adapter_and_anything_else_a_full_model():
    def kind(**metadata):
        return card_kind(CardMetadata(base_model=["a/b"], **metadata))

    assert kind(library_name="peft") == "adapter"
    assert kind(library_name="transformers") == "finetune"
    assert kind(library_name="peft", base_model_relation="quantized") == "quantized"


GEMMA4_FILES = [
    {"name": "g4-Q8_0.gguf", "type": "q8_0", "bytes": 327136, "sha256": "b1" * 32},
    {"name": "g4-F16.gguf", "type": "f16", "bytes": 580064, "sha256": "da" * 32},
]
GEMMA4_BUILD = {
    "llama_cpp": "llama.cpp 0.5.0-dev 0c1e57098b (llama-cpp-python 0.3.36)",
    "commit": "0c1e57098bba43ac29e6e3b677cdceebdd22334f",
    "writers": ["llama.cpp convert_hf_to_gguf.py", "llama.cpp quantizer"],
}
MMPROJ = {"name": "mmproj-g4-F16.gguf", "towers": ["vision", "audio"], "bytes": 396064}


def _gemma4(towers: bool) -> CardContext:
    """A Gemma 4 release's context as card_context builds it from a manifest (the
    keys of release.report.card_context.card_facts)."""
    facts = {
        "architecture": "Gemma4ForConditionalGeneration" if towers else "Gemma4ForCausalLM",
        "chat_template": True,
        "gguf_files": GEMMA4_FILES,
        "gguf_build": GEMMA4_BUILD,
        "lora": {"r": 4, "target_modules": r".*language_model.*\.(q|v)_proj"},
    }
    if towers:
        facts |= {"towers": ["vision", "audio"], "mmproj": MMPROJ | {"sha256": "a3" * 32}}
    return CardContext(
        metadata=CardMetadata(
            license="gemma", license_link="https://ai.google.dev/gemma/terms", base_model=["a/b"]
        ),
        repo_id="me/g4",
        gguf_repo_id="me/g4-GGUF",
        facts=facts,
    )


@pytest.mark.parametrize("towers", [True, False], ids=["towers", "text"])
def test_gemma4_usage_loads_with_the_right_classes_and_names_the_files(towers, tmp_path):
    ctx = _gemma4(towers)
    model_card, gguf_card = render_model_card(ctx), render_gguf_card(ctx)
    for text in (model_card, gguf_card):
        assert lint_card(text) == []
        (tmp_path / "README.md").write_text(text)
        assert ModelCard.load(tmp_path / "README.md").data.license == "gemma"
        assert "([terms](https://ai.google.dev/gemma/terms))" in text
    classes = ("AutoModelForImageTextToText", "AutoProcessor")
    if not towers:
        classes = ("AutoModelForCausalLM", "AutoTokenizer")
    assert f"from transformers import {classes[0]}, {classes[1]}\n" in model_card
    assert f'model = {classes[0]}.from_pretrained("me/g4")' in model_card
    assert ("needs Pillow (`pip install pillow`)" in model_card) == towers
    reader = "processor" if towers else "tokenizer"
    assert f"inputs = {reader}.apply_chat_template(" in model_card
    # the first GGUF file the release measured, and the projector only with the towers
    download = "hf download me/g4-GGUF g4-Q8_0.gguf" + (" mmproj-g4-F16.gguf" if towers else "")
    run = (
        "llama-mtmd-cli -m g4-Q8_0.gguf --mmproj mmproj-g4-F16.gguf --image image.jpg"
        if towers
        else 'llama-cli -m g4-Q8_0.gguf -p "Hello"'
    )
    for text in (model_card, gguf_card):
        assert f"{download} --local-dir .\n" in text and run in text
        assert ("mmproj" in text) == towers
    assert "ollama run hf.co/me/g4-GGUF:Q8_0\n" in gguf_card
    assert "llama-server -hf me/g4-GGUF:Q8_0\n" in gguf_card
    assert (
        "llama.cpp build: llama.cpp 0.5.0-dev 0c1e57098b (llama-cpp-python 0.3.36), commit "
        "[`0c1e57098b`](https://github.com/ggml-org/llama.cpp/tree/"
        "0c1e57098bba43ac29e6e3b677cdceebdd22334f). Written by llama.cpp convert_hf_to_gguf.py, "
        "llama.cpp quantizer;" in gguf_card
    )
    if towers:
        assert "tower" in gguf_card and "396.1 kB (396,064 bytes)" in gguf_card


def test_a_regex_target_modules_is_one_name_in_one_cell():
    """PEFT's regex form of target_modules: one code span, its | escaped (a bare | would
    split the table row), not a list of its characters."""
    text = render_model_card(_gemma4(towers=False))
    assert "| Target modules | `.*language_model.*\\.(q\\|v)_proj` |" in text


def test_without_a_chat_template_the_snippet_only_loads():
    ctx = _gemma4(towers=False)
    ctx = ctx.model_copy(update={"facts": ctx.facts.model_copy(update={"chat_template": False})})
    text = render_model_card(ctx)
    assert 'tokenizer = AutoTokenizer.from_pretrained("me/g4")' in text
    assert "apply_chat_template" not in text


def test_gguf_card_names_a_build_whose_commit_is_unknown():
    """A runtime whose converter was never fetched has no commit on record (the facts
    drop the empty value): the card names the build without one."""
    ctx = _gemma4(towers=False)
    build = GGUFBuildFacts.model_validate({k: v for k, v in GEMMA4_BUILD.items() if k != "commit"})
    ctx = ctx.model_copy(update={"facts": ctx.facts.model_copy(update={"gguf_build": build})})
    text = render_gguf_card(ctx)
    assert f"llama.cpp build: {build.llama_cpp}. Written by" in text
    assert "tree/" not in text and lint_card(text) == []


# --- a release's own template (card.template) --------------------------------------------

OWN_SECTION = """\
{% extends "model-release/model_card.md.j2" %}
{% block training %}
{{ super() }}
## Progress timeline

| Step | Loss | Merged size |
| --- | --- | --- |
| 100 | 1.52 | {{ facts.merged_bytes | size }} |

{% endblock %}
"""


def test_a_template_that_extends_ours_keeps_its_section_and_our_metadata(demo, tmp_path):
    ours = render_model_card(demo)
    (tmp_path / "my_card.md.j2").write_text(OWN_SECTION)
    text = render_model_card(demo, template=tmp_path / "my_card.md.j2")

    section = "## Progress timeline\n\n| Step | Loss | Merged size |\n| --- | --- | --- |\n"
    section += "| 100 | 1.52 | 269.1 MB (269,060,552 bytes) |\n\n"
    assert section + "## Evaluation\n" in text  # after our training section, before the next
    assert text.replace(section, "") == ours  # the rest is ours, byte for byte
    front = ModelCard(text).data.to_dict()
    assert front == ModelCard(ours).data.to_dict()  # metadata and model-index: the facts'
    assert front["model-index"][0]["results"]


def test_a_template_that_replaces_ours_gets_the_same_context(demo, tmp_path):
    (tmp_path / "my_card.md.j2").write_text(
        '{% include "my_part.md.j2" %}\n\n{{ facts.base_parameters | count }}\n'
    )
    (tmp_path / "my_part.md.j2").write_text("# {{ name }} ({{ kind }})\n")
    text = render_model_card(demo, template=tmp_path / "my_card.md.j2")
    body = text.split("---\n", 2)[2]
    assert body == "\n# smollm2-135m-demo-lora (adapter)\n\n134.5M (134,515,008)\n"
    assert text.startswith(render_model_card(demo).split("\n---\n")[0])  # the same front matter


@pytest.mark.parametrize(
    ("template", "words"),
    [
        (
            '{% extends "model-release/model_card.md.j2" %}\n{% block title %}\n'
            "# {{ name }}\n\n{{ progress_table }}\n{% endblock %}\n",
            "my_card.md.j2:5: template error: 'progress_table' is undefined",
        ),
        (
            "# {{ name }}\n\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n",
            "my_card.md.j2:3: template error: access to attribute '__class__' of 'str' object "
            "is unsafe.",
        ),
    ],
    ids=["undefined", "sandbox"],
)
def test_a_broken_own_template_is_one_located_line(demo, tmp_path, template, words):
    (tmp_path / "my_card.md.j2").write_text(template)
    with pytest.raises(CardError) as info:
        render_model_card(demo, template=tmp_path / "my_card.md.j2")
    assert str(info.value) == f"{tmp_path / 'my_card.md.j2'}:{words.split(':', 1)[1]}"


def test_an_own_card_is_linted_like_ours(demo, tmp_path):
    (tmp_path / "my_card.md.j2").write_text(
        "# {{ name }}\n\n| Task | acc |\n| --- | --- |\n| arc | -0.13 |\n"
    )
    with pytest.raises(CardError, match="rendered card fails its own check"):
        render_model_card(demo, template=tmp_path / "my_card.md.j2")


OWN_GGUF_SECTION = """\
{% extends "model-release/gguf_card.md.j2" %}
{% block usage %}
## Which file to take

The smallest file that passed: {{ gguf_files.files[-1].name }}.

{{ super() }}
{% endblock %}
"""


def test_a_gguf_card_template_that_extends_ours_keeps_its_section_and_our_metadata(demo, tmp_path):
    """card.gguf_template: the GGUF card's own template, with the same context and
    blocks of ours to extend; the front matter stays the facts'."""
    ours = render_gguf_card(demo)
    (tmp_path / "my_gguf.md.j2").write_text(OWN_GGUF_SECTION)
    text = render_gguf_card(demo, template=tmp_path / "my_gguf.md.j2")

    last = demo.facts.gguf_files[-1].name
    section = f"## Which file to take\n\nThe smallest file that passed: {last}.\n\n"
    assert section + "## Usage\n" in text  # before our usage section
    assert text.replace(section, "") == ours  # the rest is ours, byte for byte
    assert ModelCard(text).data.to_dict() == ModelCard(ours).data.to_dict()


def test_a_broken_gguf_card_template_is_one_located_line(demo, tmp_path):
    (tmp_path / "my_gguf.md.j2").write_text(
        '{% extends "model-release/gguf_card.md.j2" %}\n{% block files %}\n'
        "{{ quant_table }}\n{% endblock %}\n"
    )
    with pytest.raises(CardError) as info:
        render_gguf_card(demo, template=tmp_path / "my_gguf.md.j2")
    where = tmp_path / "my_gguf.md.j2"
    assert str(info.value) == f"{where}:3: template error: 'quant_table' is undefined"
    with pytest.raises(CardError, match="card template not found"):
        render_gguf_card(demo, template=tmp_path / "missing.md.j2")


def test_card_build_takes_a_gguf_card_template(demo, tmp_path):
    (tmp_path / "my_gguf.md.j2").write_text(OWN_GGUF_SECTION)
    out = tmp_path / "README.md"
    args = ["build", "--metadata", str(DEMO / "card.yaml"), "--facts", str(DEMO / "facts.json")]
    args += ["--gguf", "--template", str(tmp_path / "my_gguf.md.j2"), "--output", str(out)]
    result = CliRunner().invoke(card_app, args)
    assert result.exit_code == 0, result.output
    assert "## Which file to take\n" in out.read_text()


def test_the_quant_tables_show_what_each_file_loses(demo):
    """The GGUF card's file table and the model card's quant section: KLD mean and 99%,
    same top-1 and PPL ratio per file, one note saying what they mean, "Recommended" on
    the smallest file under the limit."""
    from cards.measured import GGUFBuildFacts, QuantLossFacts

    q8, f16 = demo.facts.gguf_files
    losses = {
        "Q8_0": QuantLossFacts(kld_mean=0.0021, kld_p99=0.0213, same_top1=0.981, ppl_ratio=1.004),
        "F16": QuantLossFacts(kld_mean=0.00001, kld_p99=0.0001, same_top1=0.999, ppl_ratio=1.0),
    }
    files = [
        q8.model_copy(update={"loss": losses["Q8_0"], "recommended": True}),
        f16.model_copy(update={"loss": losses["F16"]}),
    ]
    build = GGUFBuildFacts(loss_text="heldout.txt", loss_tokens=4080, loss_chunk=512, max_kld=0.5)
    facts = demo.facts.model_copy(update={"gguf_files": files, "gguf_build": build})
    ctx = demo.model_copy(update={"facts": facts, "repo_id": "demo-org/smollm2-135m-demo"})
    gguf_card, model_card = render_gguf_card(ctx), render_model_card(ctx)
    header = "| File | Quant type | Size | SHA-256 | KLD mean | KLD 99% | Same top-1 | PPL ratio |"
    row = (
        "| `smollm2-135m-demo-Q8_0.gguf` (Recommended) | `Q8_0` | 144.8 MB (144,811,872 bytes) "
        "| `5f1e4c3b2a1908f7…` | 0.0021 | 0.0213 | 98.1% | 1.004 |"
    )
    note = "measured with llama.cpp as `llama-perplexity --kl-divergence` does on 4080 tokens"
    for text in (gguf_card, model_card):
        assert header in text and row in text and note in text
        assert "smallest file whose mean KLD is under this release's limit of 0.5" in text
        assert "| `smollm2-135m-demo-F16.gguf` | `F16` |" in text


def test_a_contaminated_task_is_marked_in_the_evaluation_table(demo):
    """A task the contamination check marked (over max_share) carries ⚠ in the table,
    with a note naming it; the others and an unmarked check change nothing there."""
    from cards.measured import ContaminationFacts, ContaminationTask

    tasks = list(dict.fromkeys(r.task for r in demo.records))
    marked, clean = tasks[0], tasks[1]

    def card(*, mark: bool) -> str:
        checked = ContaminationFacts(
            tasks=[
                ContaminationTask(task=marked, documents=10, any_method=5, share=0.5, marked=mark),
                ContaminationTask(task=clean, documents=10),
            ],
            max_share=0.2,
        )
        facts = demo.facts.model_copy(update={"contamination": checked})
        return render_model_card(demo.model_copy(update={"facts": facts}))

    text = card(mark=True)
    table = text[text.index("## Evaluation") : text.index("## Contamination check")]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    flagged = [row.split(" | ")[0] for row in rows if "⚠" in row]
    assert flagged == [f"| {marked} ⚠"] * sum(r.task == marked for r in demo.records)
    assert f"**Contaminated (⚠):** the training data holds more of {marked} " in table
    assert lint_card(text) == []
    unmarked = card(mark=False)
    assert "⚠" not in unmarked[: unmarked.index("## Contamination check")]


def test_the_gguf_card_shows_the_tasks_run_on_its_files_beside_the_unquantized_scores(demo):
    """eval.tasks.gguf: the GGUF card gets the model card's evaluation table, a column per
    type that ran the tasks, the unquantized model's score beside it and never the
    base's (whose comparison belongs to the model card); without it, no scores at all."""
    on_q8 = [
        r.model_copy(update={"value": r.value - 0.01, "source": "m-Q8_0.gguf"})
        for r in demo.records
    ]
    ctx = demo.model_copy(
        update={"repo_id": "demo-org/smollm2-135m-demo", "quants": {"q8_0": on_q8}}
    )
    gguf_card, model_card = render_gguf_card(ctx), render_model_card(ctx)
    section = gguf_card.split("## Evaluation\n", 1)[1].split("\n## ", 1)[0]
    assert "| Task | Metric | n-shot | Score | Stderr | Q8_0 | Source |" in section
    first = demo.records[0]
    assert f"| {first.value:.4f} | ± {first.stderr:.4f} | {first.value - 0.01:.4f} |" in section
    assert "Score is the unquantized model's ([demo-org/smollm2-135m-demo]" in section
    assert "Q8_0: the same tasks on the GGUF file of that type, run by llama.cpp" in section
    assert "| Base model | Difference |" in model_card and "| Q8_0 |" in model_card
    assert "## Evaluation" not in render_gguf_card(demo.model_copy(update={"quants": {}}))
    # an F16 column is a quant's, not an F1 score's (a share that a perplexity would break)
    on_f16 = [r.model_copy(update={"value": r.value * 1000}) for r in demo.records]
    with_f16 = ctx.model_copy(update={"quants": {"f16": on_f16}})
    assert lint_card(render_model_card(with_f16)) == []
    assert lint_card(render_gguf_card(with_f16)) == []
