"""The stages of a release, in the order they run: one thin file each, its key (what of
the spec and which files it reads) and one call into its domain. ``base`` holds the
contract (``Stage``, ``StageContext``, ``StageOutput``).

Stage modules import torch and friends inside their functions, never at the top, so that
`model-release --help`, `spec check` and `card build` start instantly.
"""

from __future__ import annotations

from release.stages.base import Stage


def default_stages() -> list[Stage]:
    from release.stages.adapter import AdapterStage
    from release.stages.card import CardStage
    from release.stages.contamination import ContaminationStage
    from release.stages.evaluate import EvaluateStage
    from release.stages.gguf import GGUFStage
    from release.stages.merge import MergeStage
    from release.stages.push import PushStage

    return [
        AdapterStage(),
        MergeStage(),
        ContaminationStage(),
        EvaluateStage(),
        GGUFStage(),
        CardStage(),
        PushStage(),
    ]
