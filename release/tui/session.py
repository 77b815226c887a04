"""What the wizard is working on: the spec, where it is saved, and the manifest.

The wizard opens a release.yaml, a folder holding one, an adapter folder, or several
folders to merge (then the spec starts as ``model-release init`` would write it for
them, a merge recipe for several, and is saved the first time a step runs). Edits
make a new frozen spec through the same validation as release.yaml, so the wizard can
never save a spec the CLI would refuse.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from release.core.errors import InputError
from release.core.facts import StageFacts
from release.core.files import atomic_write_text
from release.core.manifest import MANIFEST_NAME, Manifest
from release.spec.editor import spec_text
from release.spec.schema import ReleaseSpec, load_spec, parse_spec
from release.spec.starter import starter_spec

Record = TypeVar("Record", bound=StageFacts)

SPEC_NAME = "release.yaml"


@dataclass
class Session:
    spec_path: Path
    spec: ReleaseSpec | None = None
    adapter_hint: Path | None = None
    """The adapter folder the wizard was opened on, before any spec exists."""
    starter_text: str | None = None
    """The commented starter spec a new release began from, until it is first saved."""

    @classmethod
    def open(cls, target: Path | Sequence[Path] | None) -> Session:
        if not isinstance(target, Path | None):  # folders, as `init` takes them
            folders = [path.expanduser().absolute() for path in target]
            if len(folders) > 1:
                return cls._merging(folders)
            target = folders[0] if folders else None
        target = (target or Path.cwd()).expanduser().absolute()
        if target.is_file():
            return cls(target, load_spec(target))
        if (target / SPEC_NAME).is_file():
            return cls(target / SPEC_NAME, load_spec(target / SPEC_NAME))
        if (target / "adapter_config.json").is_file():
            spec_path = target.parent / SPEC_NAME
            if spec_path.is_file():
                spec = load_spec(spec_path)
                if spec.adapter is not None and spec.adapter.path == target:
                    return cls(spec_path, spec)
                spec_path = target / SPEC_NAME
            session = cls(spec_path, adapter_hint=target)
            session.start(target)
            return session
        return cls(target / SPEC_NAME if target.is_dir() else target)

    @classmethod
    def _merging(cls, folders: list[Path]) -> Session:
        """Several folders (LoRA adapters or full fine-tunes of one base): release.yaml
        in the folder that holds them all, as for one adapter; the one there is opened
        when its merge recipe reads them all."""
        spec_path = Path(os.path.commonpath([folder.parent for folder in folders])) / SPEC_NAME
        if not spec_path.is_file():
            session = cls(spec_path)
            session.start(folders)
            return session
        from release.merge.recipe_inputs import local_paths

        spec = load_spec(spec_path)
        recipe = spec.merge.recipe
        if recipe is None or not set(folders) <= set(local_paths(recipe, spec_path.parent)):
            raise InputError(
                f"{spec_path}: already there, and its merge.recipe does not read these folders",
                hint=f"open it with `model-release wizard {spec_path}`, or move it away",
            )
        return cls(spec_path, spec)

    def start(self, inputs: Path | list[Path]) -> ReleaseSpec:
        """A first spec for an adapter folder, or several folders to merge, as
        `model-release init` would write it."""
        self.starter_text = starter_spec(inputs, self.spec_path)
        self.spec = parse_spec(self.starter_text, self.spec_path)
        return self.spec

    def changed(self, **sections: dict[str, Any] | Any) -> ReleaseSpec:
        """The spec with some sections (or top-level fields) replaced; validated, not kept."""
        assert self.spec is not None
        data = self.spec.model_dump(exclude_defaults=True)
        for key, value in sections.items():
            if isinstance(value, dict) and not value and data.get(key) is None:
                continue  # nothing to change in a section the spec leaves out (a recipe's adapter)
            data[key] = {**(data.get(key) or {}), **value} if isinstance(value, dict) else value
        context = {"base_dir": self.spec_path.parent, "spec_file": self.spec_path}
        return ReleaseSpec.model_validate(data, context=context)

    def save(self, spec: ReleaseSpec | None = None) -> None:
        """Keep ``spec`` (default: the current one) and write it to release.yaml, editing
        only the settings that changed (comments and layout of the file stay)."""
        self.spec = spec or self.spec
        assert self.spec is not None
        text = spec_text(self.spec, self.spec_path, unsaved_text=self.starter_text)
        atomic_write_text(self.spec_path, text)

    def manifest(self) -> Manifest | None:
        if self.spec is None:
            return None
        path = self.spec.workspace / MANIFEST_NAME
        if not path.is_file():
            return None
        manifest = Manifest.load(path)
        if (manifest.name, manifest.version) != (self.spec.name, self.spec.version):
            return None
        return manifest

    def facts(self, record: type[Record]) -> Record | None:
        """The last run's facts of ``record``'s stage, None when it has not run."""
        return record.of(self.manifest())

    def measured(self, stage: str) -> dict[str, Any]:
        """What the last run of ``stage`` measured of the machine."""
        manifest = self.manifest()
        record = manifest.stages.get(stage) if manifest else None
        return record.measured if record else {}


def validation_lines(error: ValidationError) -> list[str]:
    """A pydantic error of the spec as "field: message" lines."""
    return [
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
        for e in error.errors()
    ]
