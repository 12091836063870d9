"""Plain-text and HTML tables for the CLI and the notebooks (no extra dependency for a table)."""

from __future__ import annotations

import html


def text_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(nothing)"
    columns = columns or list(rows[0])
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def html_table(rows: list[dict], columns: list[str] | None = None, caption: str = "") -> str:
    columns = columns or (list(rows[0]) if rows else [])
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{_cell(row.get(c, ''))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    cap = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    text = html.escape(str(value))
    colour = {"healthy": "green", "ok": "green", "PASS": "green", "degraded": "orange",
              "down": "red", "FAIL": "red", "stopped": "grey"}.get(str(value))
    return f"<span style='color:{colour}'>{text}</span>" if colour else text
