"""The evaluate stage's key holds what its gate reads of the last release (the scores it
compares against), not the bytes of that release's manifest: pushing 1.0.0 rewrites its
manifest with the push's facts, and must not make 2.0.0's evaluate stale."""

from __future__ import annotations

from release.core.manifest import Manifest, StageRecord
from release.runner import stage_key
from release.spec.schema import ReleaseSpec
from release.stages.evaluate import EvaluateStage
from tests.test_history_records import release_manifest


def test_pushing_the_last_release_leaves_the_next_evaluate_fresh(tmp_path):
    one = release_manifest(tmp_path / "one", "1.0.0", {"arc_easy": 0.62, "piqa": 0.68})
    spec = ReleaseSpec.model_validate(
        {
            "name": "m",
            "version": "2.0.0",
            "base": {"repo_id": "a/b"},
            "adapter": {"path": str(tmp_path)},
            "workspace": str(tmp_path / "two"),
            "eval": {"previous": [str(one)]},
        }
    )

    def key() -> str:
        return stage_key(EvaluateStage(), spec, Manifest(name="m", version="2.0.0"))[0]

    before = key()
    pushed = Manifest.load(one)
    pushed.stages["push"] = StageRecord(
        key="p", finished_at="2026-01-02T00:00:00+00:00", seconds=3.5, facts={"commit": "f00"}
    )
    pushed.save(one)
    assert key() == before

    release_manifest(tmp_path / "one", "1.0.0", {"arc_easy": 0.62, "piqa": 0.60})
    assert key() != before  # the scores the gate compares against changed


def test_every_setting_the_checks_read_is_in_the_key(tmp_path):
    """The checks receive ``EvaluateSettings`` and the key is computed from it: turning
    base.trust_remote_code on (the checks' and lm-eval's loads run the repo's code) makes
    the evaluate stage stale, as does any eval setting; other base settings do not."""
    spec = ReleaseSpec.model_validate(
        {
            "name": "m",
            "version": "1.0.0",
            "base": {"repo_id": "a/b"},
            "adapter": {"path": str(tmp_path)},
            "workspace": str(tmp_path / "build"),
        }
    )

    def key(**changes) -> str:
        changed = spec.model_copy(update=changes, deep=True)
        return stage_key(EvaluateStage(), changed, Manifest(name="m", version="1.0.0"))[0]

    before = key()
    trusted = spec.base.model_copy(update={"trust_remote_code": True})
    assert key(base=trusted) != before
    assert key(eval=spec.eval.model_copy(update={"max_new_tokens": 7})) != before
    assert key(base=spec.base.model_copy(update={"revision": "main"})) == before
