"""The README and docs/*.md point at what exists: every relative link resolves to a file of the
repository (and every #anchor to a heading of the file it names), every ``ipvalue COMMAND`` they
show is a real command of the CLI, and they carry no pointers to documents outside the repository
nor internal wording (issue numbers)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ipvalue.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Screenshots produced separately; linked before they are committed. Any other missing file fails.
PENDING_IMAGES: set[str] = set()  # images a document may name before they are taken

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?<![\w./:-])ipvalue ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
#: Pointers to the project's internal documents and tracker, which readers do not have.
INTERNAL = re.compile(r"DOMAIN\.md|DESIGN\.md|STACK\.md|STYLE\.md|shared/docs|\bissues? \d+\b|\bissue #?\d+", re.IGNORECASE)


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose_and_code(text: str) -> tuple[str, list[str]]:
    """The text outside fenced code blocks, and the code (fenced blocks and inline spans)."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if fenced:
            code.append(re.sub(r"(^|\s)#\s.*", "", line))  # a shell comment is prose
        else:
            prose.append(line)
    outside = "\n".join(prose)
    return outside, code + INLINE_CODE.findall(outside)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters of any script,
    digits, '-' and '_' kept), spaces to '-'."""
    text = re.sub(r"[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = prose_and_code(path.read_text(encoding="utf-8"))
    seen, out = {}, set()
    for line in prose.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            out.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return out


def links(path: Path) -> list[str]:
    prose, _ = prose_and_code(path.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(prose) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # leave out http:, https:, mailto:


def test_the_documents_exist():
    assert (ROOT / "README.md").is_file()
    assert len(DOCUMENTS) > 5, "docs/*.md are missing"


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_id)
def test_every_relative_link_points_to_a_file_of_the_repository(doc):
    problems = []
    for target in links(doc):
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if ROOT not in resolved.parents and resolved != ROOT:
            problems.append(f"{target}: outside the repository")
            continue
        relative = str(resolved.relative_to(ROOT))
        if not resolved.exists():
            if relative not in PENDING_IMAGES:
                problems.append(f"{target}: no such file ({relative})")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading with the anchor #{anchor} in {relative}")
    assert not problems, f"{_id(doc)} has broken links:\n" + "\n".join(problems)


def commands() -> dict[str, set[str] | None]:
    """Every command of ``ipvalue`` and, for those with their own subcommands, their names."""
    def subcommands(parser: argparse.ArgumentParser) -> dict | None:
        for action in parser._actions:  # argparse keeps its subparsers here; there is no public accessor
            if isinstance(action, argparse._SubParsersAction):
                return action.choices
        return None

    top = subcommands(build_parser())
    out = {}
    for name, parser in top.items():
        nested = subcommands(parser)
        out[name] = set(nested) if nested else None
    return out


def test_the_command_parser_is_read():
    known = commands()
    assert {"value", "review", "score", "serve"} <= set(known) and "sign-off" in known["review"]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_id)
def test_every_ipvalue_command_shown_is_a_real_command(doc):
    known = commands()
    _, code = prose_and_code(doc.read_text(encoding="utf-8"))
    problems = []
    for snippet in code:
        for command, sub in COMMAND.findall(snippet):
            if command not in known:
                problems.append(f"'ipvalue {command}' in `{snippet.strip()[:80]}`: no such command (known: {sorted(known)})")
            elif known[command] is not None and sub and sub not in known[command]:
                problems.append(f"'ipvalue {command} {sub}' in `{snippet.strip()[:80]}`: no such subcommand (known: {sorted(known[command])})")
    assert not problems, f"{_id(doc)}:\n" + "\n".join(problems)


#: What ships and a reader may open besides the documents: the assumption sets and mappings (their
#: sources are printed in reports and read by validators), the page and report templates, the specs.
SHIPPED_TEXTS = sorted([*(ROOT / "ipvalue").glob("assumptions/*.yaml"), *(ROOT / "ipvalue").glob("mappings/*.yaml"),
                        *(ROOT / "ipvalue").rglob("*.j2"), *(ROOT / "features").glob("*.yaml"), *(ROOT / "experiments").glob("*.yaml")])


@pytest.mark.parametrize("doc", DOCUMENTS + SHIPPED_TEXTS, ids=_id)
def test_no_pointer_to_internal_documents_or_issue_numbers(doc):
    text = doc.read_text(encoding="utf-8")
    found = sorted({m.group(0) for m in INTERNAL.finditer(text)})
    assert not found, f"{_id(doc)} names internal documents or issues readers do not have: {found}"


def test_the_readme_links_every_reference_document():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [d.name for d in DOCUMENTS[1:] if f"(docs/{d.name})" not in readme]
    assert not missing, f"README.md does not link {missing}"
