"""The base model's and datasets' own BibTeX, read from their cards, cited in ours."""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from cards.card_bibtex import card_citations
from cards.citations import parse_bibtex
from cards.cli import app
from cards.lint import lint_card
from release.checkpoint.base import ALLOW_PATTERNS, base_citations, resolve_base_dir
from release.spec.schema import BaseModelSpec
from tests.support.hub_fixtures import CANARY_TOKEN

DEMO = Path(__file__).parent / "cards_samples" / "demo"

BASE_CARD = """---
license: apache-2.0
---
# SmolLM2

## Citation

```bibtex
@misc{allal2025smollm2,
      title={SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small Language Model},
      author={Loubna Ben Allal and Anton Lozhkov and Elie Bakouch},
      year={2025},
      eprint={2502.02737},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2502.02737},
}
```

It builds on LoRA-style ideas too:

```
@inproceedings{hu2022lora,
  title={Lo{RA}: Low-Rank Adaptation of Large Language Models},
  author={Edward J Hu and Yelong Shen},
  booktitle={International Conference on Learning Representations},
  year={2022},
}
```

```bibtex
@article{broken2024,
  title = {Never closed},
```
"""

DATASET_CARD = """# no_robots

```bibtex
@misc{no_robots,
  author = {Nazneen Rajani and Lewis Tunstall and Edward Beeching},
  title = {No Robots},
  year = {2023},
  publisher = {Hugging Face},
  howpublished = {\\url{https://huggingface.co/datasets/HuggingFaceH4/no_robots}}
}
```
"""


def keys(texts: list[str]) -> list[str]:
    return [entry.key for text in texts for entry in parse_bibtex(text)[0]]


def test_a_cards_clean_bibtex_entries_are_what_it_asks_to_be_cited_with():
    assert keys(card_citations(BASE_CARD)) == ["allal2025smollm2", "hu2022lora"]
    assert card_citations("# no citation here\n") == []


def test_card_build_cites_the_base_and_dataset_cards_once_each(tmp_path):
    (tmp_path / "base.md").write_text(BASE_CARD)
    (tmp_path / "data.md").write_text(DATASET_CARD)
    spec = yaml.safe_load((DEMO / "card.yaml").read_text())
    spec |= {"base_model_card": "base.md", "dataset_cards": ["data.md"]}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(spec))
    build = ["build", "--metadata", str(tmp_path / "card.yaml")]
    build += ["--facts", str(DEMO / "facts.json"), "--output", str(tmp_path / "README.md")]
    result = CliRunner().invoke(app, build)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "README.md").read_text()
    cited = text.split("## Citation")[1]
    # LoRA is cited once, for the method, though the base's card cites it too
    assert keys([cited.split("```bibtex")[1].split("```")[0]]) == [
        "hu2022lora",
        "gerganov2023llamacpp",
        "allal2025smollm2",
        "no_robots",
    ]
    assert "broken2024" not in text
    assert lint_card(text) == []  # the cited BibTeX is checked like any other
    assert ModelCard.load(tmp_path / "README.md").data.license == "apache-2.0"


def test_a_missing_cited_card_is_one_located_line(tmp_path):
    spec = yaml.safe_load((DEMO / "card.yaml").read_text()) | {"base_model_card": "nope.md"}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(spec))
    build = ["build", "--metadata", str(tmp_path / "card.yaml")]
    result = CliRunner().invoke(app, [*build, "--output", str(tmp_path / "README.md")])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {tmp_path / 'nope.md'}: cannot read card (No such file or directory)"
    )
    assert not (tmp_path / "README.md").exists()


def test_a_base_downloaded_from_the_hub_brings_its_card(hub, tmp_path, monkeypatch):
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    # huggingface_hub reads HF_ENDPOINT once, at import: point it at the local Hub
    template = constants.HUGGINGFACE_CO_URL_TEMPLATE.replace(constants.ENDPOINT, hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)

    api = HfApi(endpoint=hub.url, token=CANARY_TOKEN)
    api.create_repo("base-org/base")
    api.create_commit(
        "base-org/base",
        [
            CommitOperationAdd("config.json", b"{}"),
            CommitOperationAdd("README.md", BASE_CARD.encode()),
            CommitOperationAdd("pytorch_model.bin", b"never fetched"),
        ],
        commit_message="add",
    )
    assert "README.md" in ALLOW_PATTERNS
    folder = resolve_base_dir(BaseModelSpec(repo_id="base-org/base"))
    assert not (folder / "pytorch_model.bin").exists()
    assert keys(base_citations(folder)) == ["allal2025smollm2", "hu2022lora"]
    assert base_citations(tmp_path) == []  # a local base without a card cites nothing


def test_the_release_card_cites_what_intake_read_from_the_base_card():
    from release.core.manifest import Manifest, StageRecord
    from release.report.card_context import card_facts

    manifest = Manifest(name="m", version="1.0.0")
    facts = {"r": 8, "base_citations": card_citations(BASE_CARD)}
    manifest.stages["adapter"] = StageRecord(key="k", finished_at="t", seconds=0, facts=facts)
    cited = card_facts(manifest).base_model_citation
    assert keys([cited]) == ["allal2025smollm2", "hu2022lora"]
