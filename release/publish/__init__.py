"""Publish a release through GitHub Actions: the repository, not this machine, releases.

- ``tag_push``: what a runner needs is committed, tagged ``v<version>`` and pushed (the
  release workflow written first when the repository has none);
- ``follow``: the workflow run that tag started, followed to its conclusion;
- ``github_api``: the few GitHub REST calls that takes, through the GitHub CLI or a
  token.
"""
