"""analysis.blocks: the report's blocks as markdown, as a self-contained page (markdown-it-py, images
embedded, files beside the report named) and by section."""
import base64

from analysis.blocks import Block, blocks_of, in_section, title, to_html, to_markdown

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
LINES = ["# Title", "", "Source: sweep `abc`; [summary.csv](summary.csv) has *one* row per **run**.", "",
         "*A caption* ([SVG](figures/a.svg)); [MLflow](https://mlflow.org/docs/latest/); [up](#title).", "",
         "[figures/a.svg](figures/a.svg)"]
GLANCE = ["## At a glance", "", "- first 10⁻⁴¹·⁹ < 1", "- second", "  continued", "",
          "| a | b |", "|---|---|", "| 1 | x & y |", "", "![A figure](figures/a.png)"]


def blocks():
    return blocks_of("", LINES) + blocks_of("At a glance", GLANCE) + blocks_of("Other", ["## Other", "", "- not here"])


def test_blocks_are_runs_of_lines_with_their_section():
    found = blocks()
    assert found[0] == Block("", "# Title") and len(found) == 4 + 4 + 2
    assert [block.markdown for block in in_section(found, "At a glance")] == [
        "- first 10⁻⁴¹·⁹ < 1\n- second\n  continued", "| a | b |\n|---|---|\n| 1 | x & y |", "![A figure](figures/a.png)"]
    assert title(found) == "Title" and title([], "none") == "none"
    assert to_markdown(found) == "\n".join([*LINES, "", *GLANCE, "", "## Other", "", "- not here"]) + "\n"


def test_the_page_is_self_contained(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(PNG)
    page = to_html(blocks(), tmp_path)
    assert "<title>Title</title>" in page and "<h1>Title</h1>" in page and "<h2>At a glance</h2>" in page
    assert "<code>abc</code>" in page and "<em>one</em>" in page and "<strong>run</strong>" in page
    # files beside the report are named, not linked: the artifact viewer's sandboxed blob: frame
    # cannot resolve a relative link; a link with a scheme and an anchor stay links
    assert "<code>summary.csv</code> has <em>one</em> row" in page
    assert "(SVG: <code>figures/a.svg</code>)" in page and "<p><code>figures/a.svg</code></p>" in page
    assert '<a href="https://mlflow.org/docs/latest/">MLflow</a>' in page and '<a href="#title">up</a>' in page
    assert 'href="summary.csv"' not in page and 'href="figures/' not in page
    assert "<li>first 10⁻⁴¹·⁹ &lt; 1</li>" in page and "<li>second\ncontinued</li>" in page
    assert "<th>a</th>" in page and "<td>x &amp; y</td>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page  # embedded: no file needed
    assert "figures/a.png" not in page
