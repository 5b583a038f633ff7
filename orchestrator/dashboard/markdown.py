"""Just enough Markdown for the runbooks (headings, paragraphs, lists, tables, `code`, links
to other runbooks), escaped first: the pages are ours, but nothing is trusted as HTML."""

from __future__ import annotations

import re
from html import escape

_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([A-Za-z0-9_.-]+)\.md\)")
_ROW_CODE = re.compile(r"`([A-Z][A-Z0-9_]+)`")  # a row about one code: its anchor


def _inline(text: str, lang: str) -> str:
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", escape(text, quote=False))

    def link(m: re.Match[str]) -> str:
        target = "/runbooks" if m.group(2) == "README" else f"/runbooks/{m.group(2)}"
        return f'<a href="{target}?lang={lang}">{m.group(1)}</a>'

    return _LINK.sub(link, out)


def to_html(text: str, lang: str) -> str:
    html: list[str] = []
    in_list = in_table = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if in_list and not line.startswith("- "):
            html.append("</ul>")
            in_list = False
        if in_table and not line.startswith("|"):
            html.append("</table>")
            in_table = False
        if not line:
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 3)
            html.append(f"<h{level}>{_inline(line.lstrip('#').strip(), lang)}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                html.append("<ul>")
                in_list = True
            html.append(f"<li>{_inline(line[2:], lang)}</li>")
        elif line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
            if all(set(c) <= {"-", " ", ":"} for c in cells):
                continue
            if not in_table:
                html.append('<table class="runbook">')
                in_table = True
            named = _ROW_CODE.fullmatch(cells[0])
            row = f'<tr id="{named.group(1)}">' if named else "<tr>"
            html.append(row + "".join(f"<td>{_inline(c.replace(chr(92) + '|', '|'), lang)}"
                                      "</td>" for c in cells) + "</tr>")
        else:
            html.append(f"<p>{_inline(line, lang)}</p>")
    if in_list:
        html.append("</ul>")
    if in_table:
        html.append("</table>")
    return "\n".join(html)
