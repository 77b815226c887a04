"""CardMetadata against the Hub's rules and huggingface_hub's own card types."""

from __future__ import annotations

import pytest
import yaml
from huggingface_hub import ModelCard, ModelCardData
from pydantic import ValidationError

from cards import vocab
from cards.schema import CardMetadata

GOOD = {
    "license": "apache-2.0",
    "language": ["en", "fra"],
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "base_model_relation": "adapter",
    "datasets": ["HuggingFaceH4/no_robots"],
    "tags": ["lora"],
    "pipeline_tag": "text-generation",
    "library_name": "peft",
    "new_version": "demo-org/next",
    "model-index": [
        {
            "name": "demo",
            "results": [
                {
                    "task": {"type": "text-generation", "name": "Text Generation"},
                    "dataset": {
                        "type": "allenai/ai2_arc",
                        "name": "ARC-Easy",
                        "config": "ARC-Easy",
                        "split": "test",
                        "revision": "210d026faf9955653af8916fad021475a3f00453",
                        "args": {"num_few_shot": 0},
                    },
                    "metrics": [
                        {"type": "acc", "value": 0.5896, "name": "accuracy", "verified": False},
                        {"type": "perplexity", "value": 12.5},
                    ],
                    "source": {"url": "https://example.org/run", "name": "run"},
                }
            ],
        }
    ],
}


def errors(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        CardMetadata.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


def test_vocabularies_hold_the_hub_ids():
    assert {"apache-2.0", "mit", "llama3.1", "gemma", "other"} <= vocab.licenses()
    assert "apache2" not in vocab.licenses()
    assert {"text-generation", "image-text-to-text", "other"} <= vocab.tasks()
    assert {"en", "es", "eng", "yue", "fre", "code", "multilingual"} <= vocab.languages()
    assert "es-ES" not in vocab.languages()


def test_a_full_card_validates_and_dumps_back_to_the_same_data():
    metadata = CardMetadata.model_validate(GOOD)
    assert metadata.to_dict() == GOOD
    with pytest.raises(ValidationError):
        metadata.license = "mit"  # frozen


def test_round_trip_through_huggingface_hub_model_card():
    metadata = CardMetadata.model_validate(GOOD)
    card_data = metadata.to_model_card_data()
    assert isinstance(card_data, ModelCardData)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n# demo\n")
    assert card.data.eval_results[0].metric_value == 0.5896
    assert card.data.eval_results[0].dataset_args == {"num_few_shot": 0}
    assert CardMetadata.from_model_card_data(card.data) == metadata


def test_single_values_become_lists_as_the_hub_reads_them():
    metadata = CardMetadata.model_validate({"language": "en", "datasets": "a/b", "tags": "x"})
    assert (metadata.language, metadata.datasets, metadata.tags) == (["en"], ["a/b"], ["x"])


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"license": "apache2"}, ("license",), "not a Hub license id"),
        ({"language": ["es-ES"]}, ("language", 0), "did you mean 'es'"),
        ({"base_model": "./out/merged"}, ("base_model", 0), "not a Hub repo id"),
        ({"base_model_relation": "lora"}, ("base_model_relation",), "'adapter'"),
        ({"datasets": [None]}, ("datasets", 0), "valid string"),
        ({"datasets": [""]}, ("datasets", 0), "at least 1 character"),
        ({"pipeline_tag": "text-gen"}, ("pipeline_tag",), "not a Hub pipeline tag"),
        ({"licence": "mit"}, ("licence",), "Extra inputs"),
        ({"new_version": "a/b/c"}, ("new_version",), "not a Hub repo id"),
    ],
)
def test_field_rules(change, loc, words):
    [(got_loc, message)] = errors({**GOOD, **change})
    assert got_loc == loc and words in message


def _metric(**metric) -> dict:
    result = GOOD["model-index"][0]["results"][0]
    return {**GOOD, "model-index": [{"name": "m", "results": [{**result, "metrics": [metric]}]}]}


@pytest.mark.parametrize(
    ("metric", "words"),
    [
        ({"type": "accuracy", "value": -0.13}, "impossible"),
        ({"type": "acc_norm", "value": 130.0}, "impossible"),
        ({"type": "f1", "value": float("nan")}, "finite number"),
        ({"type": "perplexity", "value": float("inf")}, "finite number"),
        ({"type": "acc", "value": "0.5"}, "valid number"),
        ({"type": "acc", "value": True}, "valid number"),
    ],
)
def test_impossible_scores_are_rejected(metric, words):
    [(loc, message)] = errors(_metric(**metric))
    assert loc[-1] == "value" and words in message


def test_unbounded_metrics_may_exceed_100():
    assert CardMetadata.model_validate(_metric(type="perplexity", value=812.4))


def test_dataset_config_must_be_a_string():
    data = yaml.safe_load(yaml.safe_dump(GOOD).replace("config: ARC-Easy", "config: 25"))
    [(loc, _)] = errors(data)
    assert loc[-2:] == ("dataset", "config")


def test_duplicate_result_is_rejected_with_its_position():
    results = GOOD["model-index"][0]["results"]
    data = {**GOOD, "model-index": [{"name": "m", "results": [results[0], results[0]]}]}
    with pytest.raises(ValidationError) as info:
        CardMetadata.model_validate(data)
    [error] = info.value.errors()
    assert error["type"] == "duplicate_result"
    assert error["ctx"]["at"] == ("model-index", 0, "results", 1, "metrics", 0)


def test_license_other_needs_name_and_link():
    [(_, message)] = errors({"license": "other", "license_name": "my-license"})
    assert "license_link" in message
    assert CardMetadata(license="other", license_name="x", license_link="https://x.org/LICENSE")


def test_relation_needs_a_base_model():
    [(_, message)] = errors({"base_model_relation": "adapter"})
    assert "base_model is missing" in message


def test_huggingface_hub_reads_only_one_model_index_entry():
    entry = GOOD["model-index"][0]
    [(loc, _)] = errors({**GOOD, "model-index": [entry, {**entry, "name": "other"}]})
    assert loc == ("model-index",)
