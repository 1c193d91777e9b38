"""report.md -> a self-contained report.html (figures embedded as data URIs), for MLflow's artifact
viewer, which shows a markdown file as plain text and cannot follow its relative image links.

It renders the markdown subset the report is written in, whatever its sections: headings, paragraphs,
bullet lists, pipe tables, images, links, *emphasis*, **strong** and `code`. Images are embedded,
so the page needs nothing else. Links to files beside the report (an SVG, summary.csv) become their
paths as text: the viewer shows the page from a blob: address in a sandboxed frame, where a relative
link cannot resolve (it opens about:blank#blocked); those files are next to report.html in the run's
artifacts (report/, report/figures/). Links with a scheme (https:, ...) and in-page anchors stay links.
"""
import base64
import html
import re
from pathlib import Path

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
STYLE = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:60em;margin:2em auto;
padding:0 1em;line-height:1.5;color:#222}img{max-width:100%}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f4f4f4}
code{background:#f4f4f4;padding:0 .2em}h1,h2,h3{line-height:1.2}"""


def _inline(text, base_dir):
    """One line of markdown inline syntax as HTML; images from ``base_dir`` become data URIs."""
    parts, pos = [], 0
    for match in IMAGE.finditer(text):
        parts.append(_spans(text[pos:match.start()]))
        alt, src = match.groups()
        parts.append(f'<img alt="{html.escape(alt)}" src="{_data_uri(base_dir, src)}">')
        pos = match.end()
    parts.append(_spans(text[pos:]))
    return "".join(parts)


def _spans(text):
    out, pos = [], 0
    for match in LINK.finditer(text):
        out.append(_emphasis(html.escape(text[pos:match.start()], quote=False)))
        label, href = match.groups()
        out.append(_link(label, href))
        pos = match.end()
    out.append(_emphasis(html.escape(text[pos:], quote=False)))
    return "".join(out)


def _link(label, href):
    """A link with a scheme, or an anchor, as a link; a file beside the report as its path (see the
    module docstring)."""
    text = _emphasis(html.escape(label, quote=False))
    if href.startswith("#") or re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", href):
        return f'<a href="{html.escape(href)}">{text}</a>'
    path = html.escape(href, quote=False)
    return f"<code>{path}</code>" if label == href else f"{text}: <code>{path}</code>"


def _emphasis(text):
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", text)


def _data_uri(base_dir, src):
    path = Path(base_dir) / src
    if src.startswith(("http://", "https://", "data:")) or not path.is_file():
        return html.escape(src)
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def markdown_to_html(markdown, base_dir, title="report"):
    """The whole page for ``markdown``, with images read from ``base_dir``."""
    body, paragraph, items = [], [], []

    def flush():
        if paragraph:
            body.append(f"<p>{_inline(' '.join(paragraph), base_dir)}</p>")
            paragraph.clear()
        if items:
            body.append("<ul>" + "".join(f"<li>{_inline(i, base_dir)}</li>" for i in items) + "</ul>")
            items.clear()

    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        if heading:
            flush()
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2), base_dir)}</h{level}>")
        elif line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|?[\s:|-]+\|?", lines[i + 1].strip()):
            flush()
            rows = [f"<tr>{''.join(f'<th>{_inline(c, base_dir)}</th>' for c in _cells(line))}</tr>"]
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(f"<tr>{''.join(f'<td>{_inline(c, base_dir)}</td>' for c in _cells(lines[i]))}</tr>")
                i += 1
            body.append("<table>" + "".join(rows) + "</table>")
            continue
        elif re.match(r"\s*[-*]\s+", line):
            if paragraph:
                flush()
            items.append(re.sub(r"^\s*[-*]\s+", "", line))
        elif not line.strip():
            flush()
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            if items:
                flush()
            paragraph.append(line.strip())
        i += 1
    flush()
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_html(markdown_path, html_path=None):
    """report.html beside report.md (or at ``html_path``); returns its path."""
    markdown_path = Path(markdown_path)
    html_path = Path(html_path) if html_path else markdown_path.with_suffix(".html")
    text = markdown_path.read_text()
    first = next((line[2:] for line in text.splitlines() if line.startswith("# ")), markdown_path.stem)
    html_path.write_text(markdown_to_html(text, markdown_path.parent, title=first))
    return html_path
