"""Hub downloads, pinned: a repo at a revision becomes a local folder and a commit sha.

A branch name (or no revision, which is ``main``) moves when its owner pushes; the commit
sha it resolved to does not. ``download`` resolves the revision once and returns that
sha with the folder, so the manifest can record it and later stages, and reruns, fetch
exactly that commit (``pinned``). The files go to huggingface_hub's cache
(``$HF_HOME/hub``), where a second stage, a rerun or a CI cache restore finds them.

Every way a download fails for a reason the user can fix (a missing or private repo,
a gated one, a revision that does not exist, no token, no network) is one line naming
the spec field and what to do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from release.core.errors import InputError, WorkError


@dataclass(frozen=True)
class Snapshot:
    """A Hub repo as downloaded: the local folder of its files at ``commit``."""

    folder: Path
    repo_id: str
    revision: str | None
    """What the spec asked for (a branch, tag or sha; None for the default branch)."""
    commit: str
    """The commit sha that revision resolved to."""


def download(
    repo_id: str, revision: str | None, allow_patterns: list[str], *, field: str
) -> Snapshot:
    """Download the files of ``repo_id`` at ``revision`` matching ``allow_patterns``.

    ``field`` is the spec section that names the repo (``base``, ``adapter``), for errors.
    """
    from huggingface_hub import snapshot_download

    with _hub_errors(repo_id, revision, field=field):
        folder = Path(
            snapshot_download(
                repo_id, revision=revision, allow_patterns=allow_patterns, endpoint=_endpoint()
            )
        )
    return Snapshot(folder, repo_id, revision, commit=folder.name)


def resolve_commit(repo_id: str, revision: str | None, *, field: str) -> str:
    """The commit sha ``revision`` of ``repo_id`` resolves to now; downloads nothing."""
    from huggingface_hub import HfApi

    with _hub_errors(repo_id, revision, field=field):
        info = HfApi(endpoint=_endpoint()).model_info(repo_id, revision=revision)
    assert info.sha is not None  # the Hub always answers a revision with its commit
    return info.sha


def _endpoint() -> str | None:
    """$HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or None


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str | None, *, field: str) -> Iterator[None]:
    """huggingface_hub's errors for a read of ``repo_id``, as one line naming ``field``."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    label = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except GatedRepoError:
        raise InputError(
            f"{field}.repo_id: {repo_id} is gated and this token has no access to it",
            hint=f"accept its terms at {_endpoint() or 'https://huggingface.co'}/{repo_id} "
            "with the account of HF_TOKEN",
        ) from None
    except RevisionNotFoundError:
        raise InputError(
            f"{field}.revision: {repo_id} has no revision {revision!r}",
            hint="use a branch, tag or commit sha of that repo",
        ) from None
    except RepositoryNotFoundError:
        raise InputError(
            f"{field}.repo_id: {_not_found(repo_id)}", hint=_not_found_hint()
        ) from None
    except LocalEntryNotFoundError:
        raise WorkError(
            f"{field}.repo_id: cannot reach the Hub to download {label}, and it is not cached",
            hint="check the network (and HF_ENDPOINT), then run again",
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise InputError(
                f"{field}.repo_id: {_not_found(repo_id)}", hint=_not_found_hint()
            ) from None
        raise WorkError(
            f"{field}.repo_id: cannot download {label} ({str(exc).splitlines()[0]})",
            hint="run again; if it persists, check the Hub's status",
        ) from None


def _not_found(repo_id: str) -> str:
    return f"no repo {repo_id} on the Hub that this token can read"


def _not_found_hint() -> str:
    from huggingface_hub import get_token

    if get_token() is None:
        return "check the id; for a private repo set HF_TOKEN or run `hf auth login`"
    return "check the id, and that HF_TOKEN's account can read that repo"
