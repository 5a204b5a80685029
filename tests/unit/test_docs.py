"""README is a front door and the pages under docs/ hold the reference (issue 28): README at most
200 lines, with the two commands, the flow picture and the administrator guide on its first
screen; every page reachable from it and every relative link resolving; every page holding
examples in the sequence tests/system/test_readme_examples.py runs; no figure in prose that nothing
produces (a RESULT line the code no longer prints, a count that goes stale); design notes in their
shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.docs import (
    DOCS,
    README,
    REPO,
    anchors,
    docs_text,
    example_pages,
    has_examples,
    name,
    page,
    pages,
    prose,
    relative_links,
    slug,
    toc_pages,
)

FIRST_SCREEN = 50  # lines


def test_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200


def test_readmes_first_screen_has_the_two_commands_the_flow_and_the_administrator_guide() -> None:
    screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])

    assert "make dev" in screen
    assert "make test" in screen
    assert "(docs/dynamics.md)" in screen, "a link to the administrator guide"
    flow = re.search(r"## How a notification flows\n+```\n(.*?)```", screen, re.DOTALL)
    assert flow, "the flow picture, whole, on the first screen"
    for step in ("Dynamics", "send", "Firestore", "Pub/Sub", "deliver", "FCM", "browser"):
        assert step in flow.group(1), step
    for step in ("receipt", "purge", "Cloud Scheduler"):
        assert step in flow.group(1), step


def test_every_page_under_docs_is_reachable_from_readme() -> None:
    reached, todo = {README.resolve()}, [README.resolve()]
    while todo:
        current = todo.pop()
        for target, _ in relative_links(current):
            if target.suffix == ".md" and target.exists() and target not in reached:
                reached.add(target)
                todo.append(target)

    assert [name(p) for p in pages() if p.resolve() not in reached] == []


def test_readme_links_every_page_but_the_design_notes_in_its_table_of_contents() -> None:
    listed = set(toc_pages())
    missing = [name(p) for p in pages() if p.resolve() not in listed and p.parent.name != "design"]
    assert missing == [], "add them to README's table of contents"


TOP_LEVEL = [README, REPO / "CHANGELOG.md", REPO / "CONTRIBUTING.md"]


@pytest.mark.parametrize("path", [*TOP_LEVEL, *pages()], ids=name)
def test_every_relative_link_resolves_to_a_file_and_an_anchor(path: Path) -> None:
    broken = []
    for target, anchor in relative_links(path):
        if not target.exists():
            broken.append(f"{target.relative_to(REPO)}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{target.relative_to(REPO)}#{anchor}: no such heading")
    assert broken == []


def test_the_anchor_rule_is_githubs() -> None:
    assert slug("Who may do what (IAM)") == "who-may-do-what-iam"
    assert slug("The proofs fail when a promise breaks: `make mutate`") == (
        "the-proofs-fail-when-a-promise-breaks-make-mutate"
    )
    assert slug("Where copies live, and for how long") == "where-copies-live-and-for-how-long"


def test_every_page_holding_examples_runs_in_the_sequence() -> None:
    sequence = example_pages()
    holding = [p.resolve() for p in [README, *pages()] if has_examples(p)]

    assert holding, "the examples were found"
    assert [name(p) for p in holding if p not in sequence] == []


def test_the_sequence_follows_the_readmes_table_of_contents() -> None:
    sequence = [name(p) for p in example_pages()]

    assert sequence[0] == "README.md"
    # the API's pages in the order their examples build on each other
    order = ["register", "subscribe", "unsubscribe", "send", "rules", "reconcile", "purge"]
    positions = [sequence.index(f"docs/api/{n}.md") for n in order]
    assert positions == sorted(positions)
    assert sequence.index("docs/api/privacy.md") > positions[-1]  # erases what they made


def test_the_examples_never_take_todays_date_but_as_a_relative_date() -> None:
    # The purge example asks for a date relative to now ("+61 days"), what the data it deletes
    # was made relative to; a fixed calendar date in a request would go stale.
    for path in example_pages():
        for block in re.findall(r"^```sh\n(.*?)^```$", path.read_text(), re.M | re.S):
            requests = "\n".join(ln for ln in block.splitlines() if not ln.startswith("#"))
            if "curl" not in requests:
                continue
            dates = re.findall(r"\b20\d\d-\d\d-\d\d\b", requests)
            assert dates == [], f"{name(path)}: a fixed date in a request: {dates}"
            for call in re.findall(r"date [^)]*", requests):
                assert re.search(r"-d '[+-]\d+ days'", call), f"{name(path)}: {call}"


# --- Figures: produced by a command the docs name, or not given -------------------------------

RESULT = re.compile(r"RESULT ([a-z_0-9]+)((?: [a-z_0-9]+=\S+)*)")
PRODUCERS = [*REPO.glob("bench/*.py"), *REPO.glob("devstack/*.py"), *REPO.glob("tests/**/*.py")]


def _producers() -> str:
    return "\n".join(p.read_text() for p in PRODUCERS if p.name != "test_docs.py")


def test_every_result_line_the_docs_show_is_still_printed_with_those_fields() -> None:
    code = _producers()
    stale = []
    for path in [README, *pages()]:
        for result, fields in RESULT.findall(path.read_text()):
            if f"RESULT {result} " not in code and f'"RESULT {result}"' not in code:
                stale.append(f"{name(path)}: RESULT {result}")
                continue
            for key in re.findall(r" ([a-z_0-9]+)=", fields):
                if not _printed(key, code):
                    stale.append(f"{name(path)}: RESULT {result} {key}=")
    assert stale == []


def _printed(key: str, code: str) -> bool:
    """Whether ``key=`` is printed, as written or made from a name (``{name}_cpu_s=``)."""
    parts = key.split("_")
    return f"{key}=" in code or any(
        "}_" + "_".join(parts[n:]) + "=" in code for n in range(1, len(parts))
    )


STALE_FIGURES = [
    r"\b\d[\d,]* (?:tests|mutations|kinds of (?:planted )?violation)\b",
    r"\babout [\d.]+ (?:minutes?|seconds?|s)\b(?! of)",
]


@pytest.mark.parametrize("path", [*TOP_LEVEL, *pages()], ids=name)
def test_no_count_or_duration_of_the_suite_is_written_in_prose(path: Path) -> None:
    # How many tests or mutations there are, and how long a run takes, are printed by the
    # command that runs them (pytest's last line, RESULT privacy_mutations); written here they
    # go stale with the next change.
    text = prose(path.read_text())
    found = [m.group(0) for pattern in STALE_FIGURES for m in re.finditer(pattern, text)]
    assert found == []


def test_the_web_pages_versions_are_the_pinned_ones() -> None:
    pinned = json.loads((REPO / "web/sdk/package.json").read_text())["devDependencies"]
    text = page("web.md")

    assert f"**{pinned['firebase']}**" in text
    assert f"{pinned['chart.js']}**" in text


def _shown(value: str) -> object:
    value = value.strip().strip("`")
    if value == "unset" or value.startswith("unset:"):
        return None
    if value in ("true", "false"):
        return value == "true"
    return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else value


def test_the_configuration_page_shows_every_setting_with_its_default() -> None:
    from push365.settings import Settings

    defaults = Settings.model_construct()
    shown: dict[str, str] = {}
    for line in page("configuration.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3:
            names = re.findall(r"`PUSH365_(\w+)`", cells[0])
            values = re.sub(r"\(.*?\)", "", cells[1]).split(",")
            shown.update(zip((n.lower() for n in names), values, strict=False))

    missing = [f for f in Settings.model_fields if f != "project_id" and f not in shown]
    wrong = [
        f"PUSH365_{field.upper()}: shown {value.strip()}, default {getattr(defaults, field)!r}"
        for field, value in shown.items()
        if field in Settings.model_fields
        and field != "project_id"  # (its default is the environment's GOOGLE_CLOUD_PROJECT)
        and _shown(value) != getattr(defaults, field)
    ]
    assert missing == [], "add them to docs/configuration.md"
    assert wrong == []


def test_docs_text_holds_every_page() -> None:
    text = docs_text()
    assert all(p.read_text() in text for p in pages())


# --- Design notes ----------------------------------------------------------------------------

DESIGN = DOCS / "design"
SECTIONS = ["## Context", "## Decision", "## Why", "## Consequences", "## Revisit when"]


def design_notes() -> list[Path]:
    return sorted(p for p in DESIGN.glob("*.md") if p.name != "README.md")


def test_there_are_design_notes_and_the_index_lists_each() -> None:
    index = (DESIGN / "README.md").read_text()
    notes = design_notes()

    assert len(notes) >= 5
    assert [p.name for p in notes if f"({p.name})" not in index] == []


@pytest.mark.parametrize("path", design_notes(), ids=name)
def test_each_design_note_has_its_sections_in_order(path: Path) -> None:
    text = path.read_text()
    positions = [text.find(f"\n{section}\n") for section in SECTIONS]

    assert -1 not in positions, [s for s, p in zip(SECTIONS, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
