"""The report as a list of blocks, rendered three ways.

    blocks = [Block("", "# Title"), Block("At a glance", "## At a glance"), Block("At a glance", "- ...")]
    to_markdown(blocks)                  # report.md
    to_html(blocks, base_dir)            # report.html: self-contained, figures embedded as data URIs
    in_section(blocks, "At a glance")    # the blocks of one section (the parent run's note)

A block is one piece of the report's text (a heading, a paragraph, a list, a table, a figure with
its caption) in markdown, with the ``## `` section it belongs to, so that a renderer can select
sections without reading the finished document again. report.md is the blocks joined by blank
lines. report.html renders each block with markdown-it-py (CommonMark with tables), for MLflow's
artifact viewer, which shows a markdown file as plain text and cannot follow its relative image
links: images beside the report are embedded as data URIs, so the page needs nothing else, and
links to files beside the report (an SVG, summary.csv) become their paths as text: the viewer
shows the page from a blob: address in a sandboxed frame, where a relative link cannot resolve
(it opens about:blank#blocked); those files are next to report.html in the run's artifacts
(report/, report/figures/). Links with a scheme (https:, ...) and in-page anchors stay links.
"""
import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
STYLE = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:60em;margin:2em auto;
padding:0 1em;line-height:1.5;color:#222}img{max-width:100%}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f4f4f4}
code{background:#f4f4f4;padding:0 .2em}h1,h2,h3{line-height:1.2}"""
SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Block:
    """One piece of the report in markdown, and the ``## `` section it belongs to ("" before any)."""
    section: str
    markdown: str


def blocks_of(section, lines):
    """``lines`` of markdown (a section written as lines) as one block per run of non-blank lines."""
    out, current = [], []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            out.append(Block(section, "\n".join(current)))
            current = []
    return out


def to_markdown(blocks):
    """The markdown document: the blocks separated by blank lines."""
    return "\n\n".join(block.markdown for block in blocks) + "\n"


def in_section(blocks, section):
    """The blocks of ``section`` without its heading."""
    return [block for block in blocks if block.section == section and not block.markdown.startswith("## ")]


def title(blocks, default="report"):
    """The text of the first ``# `` heading."""
    return next((block.markdown[2:] for block in blocks if block.markdown.startswith("# ")), default)


def _data_uri(base_dir, src):
    path = Path(base_dir) / src
    if src.startswith(("http://", "https://", "data:")) or not path.is_file():
        return src
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _renderer(base_dir):
    """markdown-it-py with the report's rules: images embedded, file links named (module docstring)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(self, tokens, idx, options, env):
        token = tokens[idx]
        token.attrSet("src", _data_uri(base_dir, token.attrGet("src") or ""))
        return self.image(tokens, idx, options, env)

    def link_open(self, tokens, idx, options, env):
        href = tokens[idx].attrGet("href") or ""
        if href.startswith("#") or SCHEME.match(href):
            return self.renderToken(tokens, idx, options, env)
        # a file beside the report: its label, then its path as text (or only the path)
        close = next(i for i in range(idx + 1, len(tokens)) if tokens[i].type == "link_close")
        label = "".join(token.content for token in tokens[idx + 1:close] if token.type in ("text", "code_inline"))
        tokens[close].meta["path"] = href
        tokens[close].meta["alone"] = label == href
        if label == href:
            for token in tokens[idx + 1:close]:
                token.hidden, token.content, token.type = True, "", "text"
        return ""

    def link_close(self, tokens, idx, options, env):
        path = tokens[idx].meta.get("path")
        if path is None:
            return self.renderToken(tokens, idx, options, env)
        code = f"<code>{html.escape(path, quote=False)}</code>"
        return code if tokens[idx].meta["alone"] else f": {code}"

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    md.add_render_rule("link_close", link_close)
    return md


def to_html(blocks, base_dir, page_title=None):
    """The self-contained page of ``blocks``, with images read from ``base_dir``."""
    md = _renderer(base_dir)
    body = "".join(md.render(block.markdown) for block in blocks)
    name = html.escape(page_title if page_title is not None else title(blocks))
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{name}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n")
