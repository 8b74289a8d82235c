"""The README is short and opens with the two commands; the docs' links resolve; the
configuration reference is generated from SearchConfig and names every key with its flag."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from mogaqnn.config import SearchConfig, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def test_readme_opens_with_the_two_commands():
    head = README.split("## ")[0]
    assert "make demo" in head and "make test" in head


def test_readme_is_short_and_self_contained():
    assert len(README.splitlines()) <= 250, "README.md is longer than 250 lines"
    assert "../shared" not in README, "README.md points outside the repository"


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve_inside_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name} links to a missing file: {target}"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name} links to a missing heading: {target}"


def test_configuration_reference_is_generated():
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == reference_markdown(), (
        "docs/configuration.md differs from mogaqnn.config.reference_markdown(); run `make docs`"
    )


def test_configuration_reference_names_every_key_with_its_flag():
    rows = {line.split("|")[1].strip(" `"): line for line in reference_markdown().splitlines()
            if line.startswith("| `")}  # fmt: skip
    defaults = SearchConfig()
    for f in fields(SearchConfig):
        assert f.name in rows, f"the configuration reference lacks the key {f.name}"
        flag = "--" + f.name.replace("_", "-")
        assert f"`{flag}`" in rows[f.name], f"the configuration reference lacks {flag}"
        if isinstance(getattr(defaults, f.name), bool):
            assert f"`--no-{flag[2:]}`" in rows[f.name]
