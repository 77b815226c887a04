"""model-release: from a trained LoRA adapter to a verified release on the Hugging Face Hub."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("model-release")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
