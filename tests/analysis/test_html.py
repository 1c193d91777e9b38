"""report.md -> self-contained report.html: the markdown subset the report uses, images embedded."""
import base64

from analysis.html import markdown_to_html, write_html

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def test_markdown_subset_renders_as_html(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(PNG)
    md = ("# Title\n\nSource: sweep `abc`; [summary.csv](summary.csv) has *one* row per **run**.\n\n"
          "*A caption* ([SVG](figures/a.svg)); [MLflow](https://mlflow.org/docs/latest/); [up](#title).\n\n"
          "## At a glance\n\n- first 10⁻⁴¹·⁹ < 1\n- second\n  continued\n\n"
          "| a | b |\n|---|---|\n| 1 | x & y |\n\n![A figure](figures/a.png)\n")
    page = markdown_to_html(md, tmp_path)
    assert "<h1>Title</h1>" in page and "<h2>At a glance</h2>" in page
    assert "<code>abc</code>" in page and "<em>one</em>" in page and "<strong>run</strong>" in page
    # files beside the report are named, not linked: the artifact viewer's sandboxed blob: frame
    # cannot resolve a relative link; a link with a scheme stays a link
    assert "<code>summary.csv</code> has <em>one</em> row" in page
    assert "(SVG: <code>figures/a.svg</code>)" in page
    assert '<a href="https://mlflow.org/docs/latest/">MLflow</a>' in page and '<a href="#title">up</a>' in page
    assert 'href="summary.csv"' not in page and 'href="figures/' not in page
    assert "<li>first 10⁻⁴¹·⁹ &lt; 1</li><li>second continued</li>" in page
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>x &amp; y</td></tr></table>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page  # embedded: no file needed
    assert "figures/a.png" not in page


def test_write_html_beside_the_markdown(tmp_path):
    (tmp_path / "report.md").write_text("# Sweep report\n\ntext\n")
    path = write_html(tmp_path / "report.md")
    assert path == tmp_path / "report.html"
    assert "<title>Sweep report</title>" in path.read_text() and "<p>text</p>" in path.read_text()
