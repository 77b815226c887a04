"""One load of the merged model per release: the evaluate stage keeps the merged model's
reference, and the GGUF stage compares the files with it and never loads the model.

A tiny release (adapter, merge, evaluate with the reference, a q8_0 GGUF) is built once;
tests change copies of it. The reference is checked against transformers run here, the
GGUF figures against the full logits the stage compared with before it kept only the
top 64, and the GGUF stage is rerun in a process where transformers and torch cannot be
imported at all.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from release.core.events import StageStarted
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import EvaluateFacts
from release.gguf.agreement import Probe, compare, llama_cpp_request
from release.gguf.facts import GGUFFacts
from release.gguf.llama_cpp_process import run_llama_cpp
from release.gguf.reference_process import KeptReference
from release.reference import probe as probes
from release.reference.facts import model_identity
from release.reference.store import SequenceSet, load_reference
from release.runner import run_release, stage_states
from release.spec.schema import load_spec
from tests.support.cli_process import REPO


def _started(events: list) -> list[str]:
    return [event.stage for event in events if isinstance(event, StageStarted)]


def _manifest(spec_path: Path) -> Manifest:
    return Manifest.load(spec_path.parent / "build" / MANIFEST_NAME)


@pytest.fixture(scope="module")
def released(tiny_llama_dir, tiny_qv_adapter, tmp_path_factory) -> Path:
    """release.yaml of a built tiny release with a q8_0 GGUF; tests copy its folder."""
    root = tmp_path_factory.mktemp("reference") / "release"
    shutil.copytree(tiny_qv_adapter, root / "adapter")
    spec = {
        "name": "tiny",
        "version": "0.1.0",
        "base": {"path": str(tiny_llama_dir)},
        "adapter": {"path": "adapter"},
        "eval": {"prompts": ["Say hello."], "max_new_tokens": 6},
        "gguf": {"types": ["q8_0"]},
    }
    (root / "release.yaml").write_text(yaml.safe_dump(spec))
    list(run_release(load_spec(root / "release.yaml")))
    return root / "release.yaml"


def _copy(released: Path, target: Path) -> Path:
    shutil.copytree(released.parent, target)
    return target / "release.yaml"


def _edit(spec_path: Path, **changes) -> None:
    spec = yaml.safe_load(spec_path.read_text())
    for section, values in changes.items():
        spec[section] = {**spec.get(section, {}), **values}
    spec_path.write_text(yaml.safe_dump(spec))


def test_the_evaluate_stage_keeps_what_transformers_computes(released):
    """The probe's token ids are the merged model's tokenizer's; the kept logits are
    transformers' float32 logits of the merged model, top 64 of them, largest first."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = _manifest(released)
    workspace = released.parent / "build"
    kept = EvaluateFacts.of(manifest).reference
    assert kept.model == model_identity(manifest.stages["merge"].outputs)
    assert kept.probe == probes.PROBE.digest and kept.top_k == 64
    assert (kept.dtype, kept.device) == ("float32", "cpu (float32)")
    path = workspace / "evaluate" / kept.file
    assert kept.bytes == path.stat().st_size
    reference = load_reference(path)
    values = reference.sets["probe"]

    merged = workspace / "merge"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert values.sequences() == [tokenizer.encode(text) for text in probes.PROBE.prompts]
    assert kept.sets[0].positions == values.positions == sum(values.lengths)
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    with torch.inference_mode():
        full = [model(torch.tensor([ids])).logits[0].numpy() for ids in values.sequences()]
    assert reference.vocab_rows == full[0].shape[-1]
    expected = SequenceSet.of(values.sequences(), full, 64)
    assert np.array_equal(values.top_ids[:, 0], np.concatenate(full).argmax(-1))
    assert np.allclose(values.top_logits, expected.top_logits, atol=1e-4, rtol=0)
    assert np.allclose(values.logsumexp, expected.logsumexp, atol=1e-4, rtol=0)
    assert reference.smoke_answer == kept.smoke_answer


def test_the_gguf_stage_compares_with_the_evaluate_stages_reference(released):
    manifest = _manifest(released)
    gguf = GGUFFacts.of(manifest)
    assert gguf.reference_source == "evaluate"
    assert gguf.reference == EvaluateFacts.of(manifest).reference
    assert gguf.smoke_reference_output == gguf.reference.smoke_answer
    assert gguf.probe_positions == gguf.reference.sets[0].positions


def test_the_figures_are_the_full_logits_ones_or_bound_by_them(released):
    """The stage's figures for q8_0 (top 64 kept) against the same llama.cpp logits
    compared with the merged model's full logits, as the stage did before: the top-1
    figures are equal; the KL and the logit difference cannot be larger."""
    import torch
    from transformers import AutoModelForCausalLM

    manifest = _manifest(released)
    workspace = released.parent / "build"
    gguf = GGUFFacts.of(manifest)
    (record,) = gguf.files
    probe = Probe(
        KeptReference(gguf.reference, workspace / "evaluate" / "reference.safetensors", "evaluate")
    )
    run = run_llama_cpp(llama_cpp_request(workspace / "gguf" / record.name, probe))
    model = AutoModelForCausalLM.from_pretrained(workspace / "merge", dtype=torch.float32)
    with torch.inference_mode():
        full = [model(torch.tensor([ids])).logits[0].numpy() for ids in probe.prompts]
    vocab = full[0].shape[-1]
    old = compare(SequenceSet.of(probe.prompts, full, vocab), [v[:, :vocab] for v in run.logits])
    assert record.top1_agreement["llama_cpp"] == old.top1_agreement
    assert record.confident_top1_agreement["llama_cpp"] == old.confident_top1_agreement
    assert record.mean_kl["llama_cpp"] <= old.mean_kl + 1e-6
    assert record.max_abs_diff["llama_cpp"] <= old.max_abs_diff
    print(f"q8_0 on the tiny Llama: stage {record}, full logits {old}")


def test_the_gguf_stage_runs_where_transformers_and_torch_cannot_be_imported(released, tmp_path):
    """Rerun in a fresh process (and its children) where importing transformers or torch
    fails: the stage still checks the file, with the same figures."""
    spec_path = _copy(released, tmp_path / "release")
    blocked = tmp_path / "blocked"
    for name in ("transformers", "torch"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked), "COLUMNS": "200"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "release.cli",
            "run",
            str(spec_path),
            "--stage",
            "gguf",
            "--force",
            "gguf",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    before, after = GGUFFacts.of(_manifest(released)), GGUFFacts.of(_manifest(spec_path))
    assert after.reference_source == "evaluate"
    assert after.files[0].top1_agreement == before.files[0].top1_agreement
    assert after.files[0].mean_kl == before.files[0].mean_kl
    assert after.files[0].sha256 == before.files[0].sha256


def test_other_eval_settings_leave_the_gguf_files_done(released, tmp_path):
    """The GGUF stage is keyed on the evaluate stage's reference alone: new smoke
    prompts rerun the eval, which keeps the same reference, and the files stay."""
    spec_path = _copy(released, tmp_path / "release")
    _edit(spec_path, eval={"prompts": ["Say hi."]})
    assert stage_states(load_spec(spec_path))["gguf"] == "done"
    assert _started(list(run_release(load_spec(spec_path)))) == ["evaluate", "card"]


def test_a_changed_probe_reruns_the_eval_and_the_gguf_stage(released, tmp_path, monkeypatch):
    spec_path = _copy(released, tmp_path / "release")
    fewer = dataclasses.replace(probes.PROBE, prompts=probes.PROBE.prompts[:2])
    monkeypatch.setattr(probes, "PROBE", fewer)
    states = stage_states(load_spec(spec_path))
    assert (states["evaluate"], states["gguf"]) == ("stale", "stale")
    assert _started(list(run_release(load_spec(spec_path)))) == ["evaluate", "gguf", "card"]
    gguf = GGUFFacts.of(_manifest(spec_path))
    assert gguf.reference_source == "evaluate" and gguf.reference.probe == fewer.digest
    assert gguf.probe_prompts == 2


def test_a_changed_merged_model_reruns_with_its_own_reference(released, tmp_path):
    spec_path = _copy(released, tmp_path / "release")
    _edit(spec_path, merge={"shard_size": "2MB"})  # other shards: other files
    assert _started(list(run_release(load_spec(spec_path)))) == [
        "merge",
        "evaluate",
        "gguf",
        "card",
    ]
    manifest = _manifest(spec_path)
    gguf = GGUFFacts.of(manifest)
    assert gguf.reference_source == "evaluate"
    assert gguf.reference.model == model_identity(manifest.stages["merge"].outputs)
    assert gguf.reference.model != GGUFFacts.of(_manifest(released)).reference.model


def test_with_the_evaluate_stage_off_the_gguf_stage_computes_its_own(released, tmp_path):
    """In the checkpoint's dtype (the tiny Llama is bf16), on the CPU here."""
    spec_path = _copy(released, tmp_path / "release")
    _edit(spec_path, eval={"enabled": False})
    assert _started(list(run_release(load_spec(spec_path)))) == ["gguf", "card"]
    manifest = _manifest(spec_path)
    assert EvaluateFacts.of(manifest) is None
    gguf = GGUFFacts.of(manifest)
    assert gguf.reference_source == "gguf"
    assert (gguf.reference.dtype, gguf.reference.device) == ("bfloat16", "cpu (bfloat16)")
    assert gguf.reference.model == model_identity(manifest.stages["merge"].outputs)
    (record,) = gguf.files
    assert record.passed and record.tokenizer_agreement is True
    assert not (spec_path.parent / "build" / "gguf" / "reference.safetensors").exists()


def test_the_gguf_stage_measures_each_file_on_the_held_out_text(released):
    """The evaluate stage keeps the held-out chunks as llama-perplexity cuts them; the
    GGUF stage measures the file on them (what tests/test_gguf_quality.py checks
    against llama-perplexity) and records it under the limit."""
    manifest = _manifest(released)
    kept = EvaluateFacts.of(manifest).reference
    chunks = {s.name: s for s in kept.sets}["heldout"]
    assert kept.heldout_text == "model-release heldout.txt (multilingual sample)"
    assert chunks.positions == chunks.sequences * 512
    (record,) = GGUFFacts.of(manifest).files
    quality = record.quality
    assert quality.tokens == chunks.sequences * 255 and quality.chunk == 512
    assert 0 <= quality.kld_median <= quality.kld_mean <= quality.kld_p99 <= quality.kld_max
    assert quality.kld_mean < quality.max_kld == 0.5
    assert 0.5 < quality.same_top1 <= 1 and quality.ppl_ratio == pytest.approx(
        quality.ppl / quality.ppl_reference, abs=1e-3
    )


def test_a_file_over_max_kld_is_refused_like_a_failed_check(released, tmp_path):
    from release.core.errors import WorkError

    spec_path = _copy(released, tmp_path / "release")
    _edit(spec_path, gguf={"max_kld": 1e-9})
    before = (spec_path.parent / "build" / MANIFEST_NAME).read_bytes()
    with pytest.raises(WorkError) as refused:
        list(run_release(load_spec(spec_path)))
    assert "tiny-Q8_0.gguf: mean KL divergence from the merged model" in str(refused.value)
    assert "over gguf.max_kld 1e-09" in str(refused.value)
    assert "drop q8_0 from gguf.types, or raise gguf.max_kld" in refused.value.hint
    # the failed run leaves the last good record and names no file of its own
    assert (spec_path.parent / "build" / MANIFEST_NAME).read_bytes() == before
    assert not list((spec_path.parent / "build").glob(".partial-*"))


def test_a_large_model_on_the_cpu_reads_fewer_chunks_and_the_gguf_card_says_so(
    released, tmp_path, monkeypatch
):
    """The CPU's budget set to one chunk of the tiny model: the evaluate stage reads one
    chunk of the held-out text, its reference keeps it, the GGUF stage measures the file
    on its second half, and the GGUF card's sentence says why the text was cut."""
    from release.checkpoint.safetensors import parameter_counts
    from release.reference import heldout as heldouts

    spec_path = _copy(released, tmp_path / "release")
    parameters, _ = parameter_counts(spec_path.parent / "build" / "merge")
    monkeypatch.setattr(heldouts, "CPU_PARAMETER_TOKENS", parameters * 512)
    _edit(spec_path, eval={"max_new_tokens": 5}, gguf={"max_kld": 0.6})  # both rerun
    assert _started(list(run_release(load_spec(spec_path)))) == ["evaluate", "gguf", "card"]
    manifest = _manifest(spec_path)
    why = f"at most 512 tokens read: a {parameters / 1e9:.3g}B-parameter model on the CPU"
    why += " (on a GPU, 4,096)"
    evaluated = EvaluateFacts.of(manifest)
    assert (evaluated.perplexity.tokens, evaluated.perplexity.limited) == (512, why)
    assert {s.name: s.sequences for s in evaluated.reference.sets}["heldout"] == 1
    assert evaluated.reference.heldout_limited == why
    (record,) = GGUFFacts.of(manifest).files
    assert (record.quality.tokens, record.quality.limited) == (255, why)
    card = (spec_path.parent / "build" / "card" / "gguf" / "README.md").read_text()
    assert (
        "on 255 tokens of model-release heldout.txt (multilingual sample) (512-token chunks, "
        f"the second half of each scored; {why})" in card
    ), card


@pytest.mark.parametrize(
    ("parameters", "gpus", "limit"),
    [
        (135_000_000, 0, 4096),  # SmolLM2-135M: the whole 4,096
        (1_000_000_000, 0, 4096),
        (1_500_000_000, 0, 2560),
        (3_930_000_000, 0, 1024),  # the 3.8B bench model: two chunks
        (7_900_000_000, 0, 512),  # Gemma-4-E4B: one
        (31_000_000_000, 0, 512),  # one at least
        (31_000_000_000, 1, 4096),  # a GPU reads it all
    ],
)
def test_the_held_out_tokens_a_model_reads(parameters, gpus, limit, monkeypatch):
    from release.reference.heldout import heldout_text

    monkeypatch.delenv("MODEL_RELEASE_HELDOUT_TOKENS")  # the suite's own limit
    read = heldout_text(None).read_by(parameters, gpus)
    assert read.limit == limit
    assert (read.limited is None) == (limit == 4096)


def test_the_variable_reads_fewer_tokens_on_any_device_and_says_so(monkeypatch):
    from release.core.errors import WorkError
    from release.reference.heldout import heldout_text

    monkeypatch.setenv("MODEL_RELEASE_HELDOUT_TOKENS", "1024")
    read = heldout_text(None).read_by(135_000_000, gpus=1)
    assert (read.limit, read.limited) == (
        1024,
        "at most 1,024 tokens read: MODEL_RELEASE_HELDOUT_TOKENS=1024",
    )
    assert heldout_text(None).read_by(31_000_000_000, gpus=0).limit == 512  # the CPU's is less
    monkeypatch.setenv("MODEL_RELEASE_HELDOUT_TOKENS", "many")
    with pytest.raises(WorkError, match="MODEL_RELEASE_HELDOUT_TOKENS='many' is not a number"):
        heldout_text(None).read_by(135_000_000, gpus=0)
