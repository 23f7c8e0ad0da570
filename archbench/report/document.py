"""The report as a list of blocks, rendered once as Markdown and once as self-contained HTML.

Building the content once and rendering it twice keeps README.md and index.html saying the same
thing. Text in blocks is plain text: each renderer does its own escaping.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Caution:
    text: str


@dataclass
class BulletList:
    items: list[str]


@dataclass
class Glance:
    """The verdicts at the top of the report: (title, plain-words verdict) per comparison; a verdict of
    several sentences (a list) is shown one point a line under its title."""
    items: list[tuple[str, str | list[str]]]


@dataclass
class Code:
    text: str


@dataclass
class Table:
    """A display table (strings); `name` is also the stem of its files under tables/. `note`, when
    given, is one sentence shown under the table (e.g. what a mark in it means)."""
    name: str
    caption: str
    frame: pd.DataFrame
    files: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class Figure:
    caption: str
    png: str  # path relative to the report folder
    svg: str


def _glance_points(block: Glance) -> list[tuple[str, list[str]]]:
    return [(title, [text] if isinstance(text, str) else list(text)) for title, text in block.items]


def render_markdown(blocks) -> str:
    parts = [_markdown_block(block) for block in blocks]
    return "\n\n".join(part for part in parts if part) + "\n"


def _markdown_block(block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Caution):
        return f"> **Warning:** {block.text}"
    if isinstance(block, BulletList):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Glance):
        return "\n".join(f"- **{title}**: {points[0]}" if len(points) == 1
                         else f"- **{title}**:" + "".join(f"\n  - {point}" for point in points)
                         for title, points in _glance_points(block))
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    if isinstance(block, Table):
        links = " ".join(f"[{Path(file).suffix[1:]}]({file})" for file in block.files)
        caption = f"*{block.caption}*" + (f" ({links})" if links else "")
        note = f"\n\n{block.note}" if block.note else ""
        return f"{caption}\n\n{markdown_table(block.frame)}{note}"
    if isinstance(block, Figure):
        return f"![{block.caption}]({block.png})\n\n*{block.caption}* ([svg]({block.svg}))"
    raise TypeError(f"unknown report block {type(block).__name__}")


def markdown_table(frame: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table; written here so the report needs no `tabulate`."""
    def cell(value) -> str:
        return _text(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(column) for column in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(value) for value in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# Click a column header to sort by it (again to reverse). Cells are compared by their leading
# number ("94.00 ± 0.50" -> 94, "78% [..]" -> 78, "1,234" -> 1234) when they have one, else
# as text; missing values ("—") sort last. Inline, so the page stays one self-contained file.
SORT_SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (header, column) {
    header.title = "sort by this column";
    header.addEventListener("click", function () {
      var ascending = header.dataset.order !== "asc";
      table.querySelectorAll("thead th").forEach(function (other) { delete other.dataset.order; });
      header.dataset.order = ascending ? "asc" : "desc";
      function key(row) {
        var text = row.cells[column].textContent.trim();
        var number = parseFloat(text.replace(/[,\u00b1+%]/g, ""));
        return {missing: text === "\u2014" || text === "", number: number, text: text};
      }
      var rows = Array.from(table.tBodies[0].rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x.missing !== y.missing) { return x.missing ? 1 : -1; }
        var order = (!isNaN(x.number) && !isNaN(y.number)) ? x.number - y.number
                    : x.text.localeCompare(y.text, undefined, {numeric: true});
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
    });
  });
});
"""


def render_html(blocks, report_dir: Path, title: str) -> str:
    """One self-contained page: figures are inlined as base64 PNG, so no server is needed."""
    body = "\n".join(_html_block(block, Path(report_dir)) for block in blocks)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="archbench.report">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 90em; padding: 0 1em;
       line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
caption {{ caption-side: top; text-align: left; font-style: italic; padding-bottom: 0.3em; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
td {{ white-space: nowrap; }}
.scroll {{ overflow-x: auto; }}
th.text, td.text {{ text-align: left; }}
th:first-child, td:first-child {{ text-align: left; }}
thead th {{ border-bottom: 2px solid #444; }}
figure {{ display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }}
figure img {{ max-width: 36em; width: 100%; }}
.warning {{ background: #fff3cd; border-left: 4px solid #d39e00; padding: 0.5em 1em; }}
pre {{ background: #f6f8fa; padding: 0.6em 1em; overflow-x: auto; }}
thead th {{ cursor: pointer; }}
thead th[data-order="asc"]::after {{ content: " ▲"; }}
thead th[data-order="desc"]::after {{ content: " ▼"; }}
.glance {{ background: #eef5ee; border-left: 4px solid #2e7d32; padding: 0.2em 1em; }}
.note {{ font-size: 0.9em; margin-top: -1em; }}
td.under-load {{ color: #999; }}
</style>
</head>
<body>
{body}
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""


def _html_block(block, report_dir: Path) -> str:
    escape = html.escape
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Caution):
        return f'<p class="warning"><strong>Warning:</strong> {escape(block.text)}</p>'
    if isinstance(block, BulletList):
        items = "".join(f"<li>{escape(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Glance):
        items = "".join(f"<li><strong>{escape(title)}</strong>: {escape(points[0])}</li>" if len(points) == 1
                        else f"<li><strong>{escape(title)}</strong>:<ul>"
                             + "".join(f"<li>{escape(point)}</li>" for point in points) + "</ul></li>"
                        for title, points in _glance_points(block))
        return f'<div class="glance"><ul>{items}</ul></div>'
    if isinstance(block, Code):
        return f"<pre><code>{escape(block.text)}</code></pre>"
    if isinstance(block, Table):
        note = f'\n<p class="note">{escape(block.note)}</p>' if block.note else ""
        # every table open: a reader who opens a study's section came for its tables
        return html_table(block.frame, block.name, block.caption) + note
    if isinstance(block, Figure):
        encoded = base64.b64encode((report_dir / block.png).read_bytes()).decode("ascii")
        return (f'<figure><img alt="{escape(block.caption)}" src="data:image/png;base64,'
                f'{encoded}"><figcaption>{escape(block.caption)}</figcaption></figure>')
    raise TypeError(f"unknown report block {type(block).__name__}")


def _text(value) -> str:
    """A cell's text; an empty value (None, NaN) is the dash every table uses, never 'nan'."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return str(value)


def _marked(style: str, value) -> str:
    """Greyed, with a tooltip, when the cell carries the under-load mark (archbench.report.tables)."""
    if str(value).endswith("‡"):
        return ' class="under-load" title="measured under load or not a valid ratio: see the note below"'
    return style


def html_table(frame: pd.DataFrame, name: str, caption: str) -> str:
    escape = html.escape
    # Numbers align right, words left; a column is numeric when every value starts like one.
    numeric = [all(re.match(r"^[+\-±]?[\d.,]|^—$", str(value)) for value in frame[column])
               for column in frame.columns]
    cell = ["" if is_number else ' class="text"' for is_number in numeric]
    head = "".join(f"<th{style}>{escape(str(column))}</th>"
                   for column, style in zip(frame.columns, cell))
    rows = "".join(
        "<tr>" + "".join(f"<td{_marked(style, value)}>{escape(_text(value))}</td>"
                         for value, style in zip(row, cell)) + "</tr>"
        for row in frame.itertuples(index=False))
    # Cells never wrap ("94.00 ± 0.50" on one line); a wide table scrolls instead.
    return (f'<div class="scroll"><table id="{escape(name)}"><caption>{escape(caption)}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>")
