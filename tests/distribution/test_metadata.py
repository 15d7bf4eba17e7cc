"""The project's metadata says what is true: the Python versions CI runs, where the project
lives, and a README whose links work on PyPI (no build needed: fast)."""

from __future__ import annotations

import re
import tomllib

from venvs import ROOT

README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPOSITORY = "https://github.com/ironpush/ironpush"


def ci_versions() -> set[str]:
    """The Python versions ``.ci/run`` runs (its ``FULL`` and ``FAST_VERSIONS``)."""
    script = (ROOT / ".ci" / "run").read_text()
    full = re.search(r"^FULL=(\S+)$", script, flags=re.M)
    fast = re.search(r'^FAST_VERSIONS="([^"]+)"$', script, flags=re.M)
    assert full, "a FULL= line in .ci/run"
    assert fast, "a FAST_VERSIONS= line in .ci/run"
    return {full.group(1), *fast.group(1).split()}


def test_the_classifiers_name_exactly_the_python_versions_ci_runs() -> None:
    prefix = "Programming Language :: Python :: 3."
    claimed = {
        c.rsplit(" :: ", 1)[1] for c in PYPROJECT["project"]["classifiers"] if c.startswith(prefix)
    }
    assert claimed == ci_versions() == {"3.11", "3.12", "3.13"}
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_the_readme_says_how_ci_splits_the_versions() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    split = README.split("<!-- ci-split -->", 1)[1].split("<!-- /ci-split -->", 1)[0]
    full = re.search(r"^FULL=(\S+)$", script, flags=re.M)
    assert full
    assert f"**Python {full.group(1)}**" in split
    assert all(f"Python {v}" in split for v in ci_versions())
    subset = script.split("FAST_SUBSET=(", 1)[1].split(")", 1)[0]
    assert '-m "not slow"' in subset
    assert '-m "not slow"' in split
    paths = re.findall(r"\btests/\S+", subset)
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), f".ci/run's fast subset names {path}, which is gone"
        assert f"`{path}`" in split, f"the README's CI paragraph does not name {path}"


def test_the_readme_links_and_images_are_absolute_so_pypi_renders_them() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    assert targets
    relative = [t for t in targets if not t.startswith(("#", "https://"))]
    assert not relative, relative
    assert f"]({REPOSITORY}/blob/main/RELIABILITY.md)" in README
    assert f"]({REPOSITORY}/blob/main/benchmarks/README.md)" in README
    [image] = re.findall(r"!\[[^]]*\]\(([^)]+)\)", README)
    assert image.startswith("https://raw.githubusercontent.com/ironpush/ironpush/main/docs/")
    assert (ROOT / image.split("/main/", 1)[1]).is_file()


def test_the_project_urls_point_at_the_repository() -> None:
    urls = PYPROJECT["project"]["urls"]
    assert {"Source", "Issues", "Changelog", "Documentation"} <= set(urls)
    assert all(url.startswith(REPOSITORY) for url in urls.values())
    assert (ROOT / urls["Changelog"].split("/blob/main/", 1)[1]).is_file()
