"""model-release: from a trained LoRA adapter to a verified release on the Hugging Face Hub.

The package, top to bottom (each layer imports only from those below it; pyproject's
``[tool.importlinter]`` checks it):

- ``cli``: the ``model-release`` commands; ``tui``: the Textual wizard.
- ``card_push``: ``push --card-only``, a command beside the runner; ``publish``:
  publish through GitHub Actions (workflow, commit, tag, git push; the run followed).
- ``runner``: the stages in order, keyed, skipped when nothing changed, resumed.
- ``stages``: one thin file per stage (the ``Stage`` contract is ``stages.base``).
- ``report``: console, GitHub Actions summary, error table, the cards' context.
- domains: ``hub`` (plan, checks, one commit + tag per repo), ``gguf`` (export, sizes,
  verification with llama.cpp), ``evaluate`` (sanity checks, the gate), ``demo``;
  ``reference`` (the merged model's reference: kept by the evaluate stage, read by the
  GGUF checks) below them; ``merge`` (adapter intake, the streaming merge) below that;
  ``checkpoint`` (the one safetensors reader, configs, the base model) below that.
- ``preflight``: the disk and memory a stage needs, against what the machine has.
- ``spec``: release.yaml.
- ``core``: errors, events, the manifest, atomic files.

``cards`` (model cards: schema, eval results, lint, render) sits below all of it and
imports nothing from ``release``. ``templates`` (top level, files only) holds the cards'
templates, the starter release.yaml and the workflow ``publish`` writes.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("model-release")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
