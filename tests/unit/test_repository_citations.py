"""No tracked file cites a document a clone does not contain: a reader (or a reviewer) following a
reference must find it in the repository. Caught: a path to a document (``dir/name.md``) that
exists neither beside the citing file nor from the repository root, a ``../`` path leading out of
the repository, a relative Markdown link that leads nowhere, and an absolute path into someone's
checkout (``/work/…``, ``/home/…``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A path with a folder, ending in a document's extension, not glued to a URL or a longer path.
DOCUMENT = re.compile(r"(?<![\w/.:@-])((?:\.\./)*[\w.-]+(?:/[\w.-]+)+\.(?:md|rst|pdf|adoc))(?![\w/])")
PARENT = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-][\w./-]*)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
CHECKOUT = re.compile(r"(?<![\w.:/-])(/(?:work|home|Users|root)/[\w./-]+)")


def tracked_texts() -> list[tuple[str, str]]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    texts = []
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()  # its examples dangle on purpose
    for name in filter(None, names):
        path = ROOT / name
        if name == this:
            continue
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        try:
            texts.append((name, path.read_text()))
        except UnicodeDecodeError:
            continue
    return texts


def resolves_inside(citing: str, cited: str) -> bool:
    for base in ((ROOT / citing).parent, ROOT):
        target = (base / cited).resolve()
        if target.is_relative_to(ROOT) and target.exists():
            return True
    return False


def dangling_citations(name: str, text: str) -> list[str]:
    found = [m.group(1) for m in CHECKOUT.finditer(text)]
    patterns = [DOCUMENT, PARENT]
    if name.endswith(".md"):  # Markdown links elsewhere are text generated for another folder
        patterns.append(MARKDOWN_LINK)
    for pattern in patterns:
        for match in pattern.finditer(text):
            cited = match.group(1)
            if pattern is MARKDOWN_LINK and re.match(r"[a-z]+:", cited):
                continue  # a URL
            if not resolves_inside(name, cited):
                found.append(cited)
    return found


def test_every_cited_document_is_in_the_repository() -> None:
    dangling = {
        f"{name}: {cited}" for name, text in tracked_texts() for cited in dangling_citations(name, text)
    }
    assert sorted(dangling) == []


def test_the_check_sees_each_kind_of_dangling_citation() -> None:
    text = (
        "see shared/notes/snowflake.md; ../../outside/plan.txt; [ops](nowhere.md#x); "
        "run --state-dir /work/h5/.local/bench; fine: docs/reliability.md, [r](docs/reliability.md)"
    )
    assert dangling_citations("README.md", text) == [
        "/work/h5/.local/bench",
        "shared/notes/snowflake.md",
        "../../outside/plan.txt",
        "nowhere.md",
    ]


# ``library/test_x.py::test_name`` (under tests/), as docs/reliability.md's "proven by" column cites.
TEST_REFERENCE = re.compile(
    r"\b((?:unit|library|workflow|infra|local_stack|contract)/test_\w+\.py)(?:::(\w+))?"
)


def test_every_cited_test_exists() -> None:
    missing = set()
    for name, text in tracked_texts():
        for match in TEST_REFERENCE.finditer(text):
            path, test = ROOT / "tests" / match.group(1), match.group(2)
            if not path.is_file() or (
                test and not re.search(rf"^(async )?def {test}\(", path.read_text(), re.MULTILINE)
            ):
                missing.add(f"{name}: {match.group(0)}")
    assert sorted(missing) == []
