"""The fuzz pass, a fixed-seed sample of it: random mutations of a valid spec, adapter
config, safetensors header, card front matter and results file, each answered with an
exit code and a one-line error, never a traceback or "this is a bug".

bench/fuzz_inputs.py runs thousands of cases of the same generator; a finding there
is a case to add here or to tests/bad_inputs.
"""

from __future__ import annotations

import pytest

from tests.support.fuzz_inputs import Fuzzer

SAMPLE = {
    "spec": 120,
    "adapter_config": 30,
    "safetensors_header": 60,
    "card_front_matter": 120,
    "results": 100,
}
"""Cases per target: the adapter's run a stage, the others only read a file."""


@pytest.fixture(scope="module")
def fuzzer(tiny_llama_dir, tiny_qv_adapter, tmp_path_factory) -> Fuzzer:
    return Fuzzer(tmp_path_factory.mktemp("fuzz"), tiny_llama_dir, tiny_qv_adapter)


@pytest.mark.parametrize("target", list(SAMPLE))
def test_no_mutated_input_ends_in_a_traceback(fuzzer: Fuzzer, target: str, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("MODEL_RELEASE_DEBUG", raising=False)
    findings = [f for seed in range(SAMPLE[target]) if (f := fuzzer.case(target, seed))]
    assert findings == []
