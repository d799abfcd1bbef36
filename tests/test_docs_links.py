"""Every relative link in the README and the docs points at a file that exists and, with `#anchor`, at a heading of
that file (GitHub's rule for heading anchors: lower case, punctuation dropped, spaces to hyphens). Two links to a
renamed section of docs/demo_outcome.md went unnoticed until December 2026."""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]*?)(?:#([^)\s]+))?\)")
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, characters other than letters, digits, `-`, `_` and spaces
    dropped, spaces turned into hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {github_anchor(heading) for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_github_anchor_follows_githubs_rule():
    assert github_anchor("An SFT stage before PPO-Lag: the rows given their 240 steps (three seeds)") == (
        "an-sft-stage-before-ppo-lag-the-rows-given-their-240-steps-three-seeds"
    )
    assert github_anchor("Where λ makes a decline pay (seed 42)") == "where-λ-makes-a-decline-pay-seed-42"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for target, anchor in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...: not checked offline
            continue
        linked = (page.parent / target).resolve() if target else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target or page.name}#{anchor}: no such heading")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_architecture_page_names_every_module():
    """docs/architecture.md is the map of the package: every module of `trl_safe/` is named there (by its path, or by
    its file name in a row that lists it beside a sibling), so that a new module cannot land unexplained. Nine were
    missing from it until December 6, 2026."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    package = REPO_ROOT / "trl_safe"
    modules = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if path.name != "__init__.py" and "metrics" not in path.relative_to(package).parts
    ]
    assert modules, "no module found under trl_safe/"
    named = [module for module in modules if f"trl_safe/{module}" in text or f"`{Path(module).name}`" in text]
    missing = sorted(set(modules) - set(named))
    assert not missing, f"docs/architecture.md does not name {missing}"
