"""The documentation as the tests read it: README.md (the front door) and the pages under docs/.

A test that checks what the docs say about a part of the repository reads that part's page
(``page("operations/iam.md")``); one that checks a statement wherever it is made reads
``docs_text()``. README's table of contents ("## Where to go next") orders the pages: their
``curl`` examples run in that order as one session (tests/system/test_readme_examples.py), so a
page linked there is run without further changes. Standard library only: the unit tests import it.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
TOC_HEADING = "## Where to go next"

LINK = re.compile(r"(?<!!)\[(?:[^\]`]|`[^`]*`)*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def page(name: str) -> str:
    """The text of one page under docs/ (``"api/send.md"``)."""
    return (DOCS / name).read_text("utf-8")


def pages() -> list[Path]:
    """Every Markdown page under docs/, in path order."""
    return sorted(DOCS.rglob("*.md"))


def docs_text() -> str:
    """README and every page under docs/, one after the other."""
    return "\n".join(path.read_text("utf-8") for path in [README, *pages()])


def name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def prose(text: str) -> str:
    """The text outside fenced code blocks (each block's lines left out)."""
    kept, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            kept.append(line)
    return "\n".join(kept)


def links(path: Path) -> list[str]:
    """Every link and image target in a page's prose, as written."""
    return [a or b for a, b in LINK.findall(prose(path.read_text("utf-8")))]


def relative_links(path: Path) -> list[tuple[Path, str]]:
    """Every link to a file of the repository: (the file, its anchor or "")."""
    found = []
    for target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        found.append((resolved, anchor))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, blanks to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a page's headings (a repeated one gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose(path.read_text("utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if not heading:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def toc_pages() -> list[Path]:
    """The pages README's table of contents links, in its order, each once."""
    text = README.read_text("utf-8")
    start = text.index(TOC_HEADING)
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    ordered: list[Path] = []
    for target in [a or b for a, b in LINK.findall(section)]:
        file = target.partition("#")[0]
        if not file.startswith("docs/") or not file.endswith(".md"):
            continue
        path = (REPO / file).resolve()
        if path not in ordered:
            ordered.append(path)
    return ordered


def example_pages() -> list[Path]:
    """README, then the pages of its table of contents: the order the examples run in."""
    return [README, *toc_pages()]


def has_examples(path: Path) -> bool:
    """Whether a page holds an ``sh`` block with a ``curl`` in it (an example the tests run)."""
    text = path.read_text("utf-8")
    blocks = re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```$", text, re.MULTILINE | re.DOTALL)
    return any("curl" in block for block in blocks)
