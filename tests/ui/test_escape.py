"""ui.escape.md: outside text through Streamlit's Markdown shows as the same characters, never as syntax."""

from __future__ import annotations

import re

import pytest

from ui.escape import md, md_quote
from ui.sidebar import runs_folder_label


def unescaped(markdown: str) -> str:
    """What is left once each backslash escape is taken out: the syntax a Markdown renderer would act on."""
    return re.sub(r"\\.", "", markdown)


def literal(markdown: str) -> str:
    """The characters the reader sees: each escape stands for its character."""
    return re.sub(r"\\(.)", r"\1", markdown)


@pytest.mark.parametrize("text", [
    "[Your session expired: log in again](https://evil.example/login)",
    "![x](https://evil.example/pixel.png)", "<https://evil.example>", "https://evil.example/login",
    "www.evil.example", "**bold** _it_ ~~gone~~ `code`", "$\\frac{1}{0}$", ":red[alarm] :material/warning:",
    "<script>alert(1)</script>", "&lt;b&gt;", "| a | b |",
])
def test_markdown_syntax_is_escaped_and_the_text_kept(text):
    out = md(text)
    assert literal(out) == text  # the reader sees exactly the outside text …
    left = unescaped(out)  # … and nothing of it acts as Markdown
    for syntax in ("](", "<", "**", "`", "$", "~~", "https://", "www.", ":red[", ":material", "&lt;", "|"):
        assert syntax not in left, (syntax, out)


@pytest.mark.parametrize("text, start", [("1. first", "1\\."), ("- item", "\\-"), ("> quote", "\\>"),
                                         ("# heading", "\\#"), ("12) x", "12\\)")])
def test_a_block_marker_at_the_start_is_escaped(text, start):
    assert md(text).startswith(start) and literal(md(text)) == text


def test_lines_join_and_long_text_is_cut():
    assert md("line one\n\n    indented code\n# heading") == "line one indented code \\# heading"
    assert len(md("x" * 2000)) == 500 and md("x" * 2000).endswith("…")
    assert md_quote("a" * 200).startswith("'") and len(md_quote("a" * 200)) == 82


def test_ordinary_text_is_left_alone():
    for text in ("20250101-older", "pca-finished", "status.json is not valid JSON (Expecting value: line 1)", "a.b"):
        assert md(text) == text


def test_the_runs_folder_label_never_shows_an_absolute_path(tmp_path):
    assert runs_folder_label(tmp_path / "runs", cwd=tmp_path) == "runs"
    assert runs_folder_label(tmp_path / "a" / "runs", cwd=tmp_path) == "a/runs"
    assert runs_folder_label(tmp_path / "elsewhere", cwd=tmp_path / "x") == "elsewhere"
