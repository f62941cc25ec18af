"""The batch report (:class:`abn.report.Report`) as one self-contained HTML page.

Pictures are ``data:`` URIs, the style sheet is inline, and there is no script, link or font to
fetch: the file opens offline and can be mailed as it is. Every text from outside (file names,
class names, the command line, messages) goes through :func:`escape`. The page follows the
reader's light or dark setting (``prefers-color-scheme``).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Container
from typing import Any

from abn.explain import get_method

STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1f; --bg: #fff; --muted: #5f6368;
  --line: #d0d4da; --warn-bg: #fff4e5; --warn: #8a4b00; --head: #f3f5f8; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e6ea; --bg: #17181b; --muted: #a0a4ab; --line: #3a3d44;
    --warn-bg: #3a2a12; --warn: #ffc46b; --head: #23252a; } }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; word-break: break-all; }
table { border-collapse: collapse; margin: .6rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .25rem .55rem; text-align: left;
  vertical-align: top; }
th { background: var(--head); } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); font-size: 90%; }
.unlike { background: var(--warn-bg); color: var(--warn); padding: .3rem .6rem;
  border-radius: 4px; display: inline-block; }
.maps { display: flex; flex-wrap: wrap; gap: .8rem; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 85%; color: var(--muted); max-width: 224px; }
img.raw { image-rendering: pixelated; width: 112px; height: auto; }
code { word-break: break-all; }
section.image { border-top: 1px solid var(--line); }
"""


def escape(text: object) -> str:
    """Text for HTML element content or a double-quoted attribute."""
    return html.escape(str(text), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    """``data`` inlined as a base64 ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _img(data: bytes, mime: str, alt: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} src="{data_uri(data, mime)}" alt="{escape(alt)}">'


def _num(value: Any, digits: int = 3) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def _table(head: list[str], rows: list[list[str]], numeric: Container[int] = ()) -> str:
    """A table of already-escaped cells; the ``numeric`` columns are right-aligned."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>"
            for j, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _header(report: Any) -> str:
    m = report.model
    card = [
        ["Model", escape(m.name)],
        ["Checkpoint", escape(m.checkpoint or "—")],
        ["Digest (SHA-256)", f"<code>{escape(m.digest or '—')}</code>"],
        ["Dataset", escape(m.dataset)],
        ["Accuracy", escape(m.accuracy)],
        ["Classes", escape(m.classes)],
    ]
    methods = "".join(
        f"<li><b>{escape(get_method(n).title)}</b> — {escape(get_method(n).description)}</li>"
        for n in report.methods
    )
    counts = f"{len(report.images)} image(s) explained, {len(report.skipped)} skipped"
    return (
        "<header><h1>ABN batch report</h1>"
        f'<p class="muted">{escape(report.created)} · {escape(counts)}</p>'
        + _table(["Model card", ""], card)
        + f"<p><b>Methods</b></p><ul>{methods}</ul>"
        f"<p><b>Unlike the training data:</b> {escape(report.calibration)}</p>"
        f"<p><b>Command:</b> <code>{escape(report.command or '—')}</code></p></header>"
    )


def _score_summary(report: Any) -> str:
    from abn.metrics.scorecard import HIGHER_IS_BETTER, LABELS

    table = report.score_table()
    if table.empty:
        return ""
    metrics = [c for c in HIGHER_IS_BETTER if c in table.columns]
    rows = []
    for r in table.to_dict("records"):
        cells = [escape(get_method(r["method"]).title), str(int(r["n"]))]
        for c in metrics:
            half = r.get(f"{c}_ci95")
            spread = f" ± {_num(half)}" if isinstance(half, float) and math.isfinite(half) else ""
            cells.append(f"{_num(r[c])}{spread}")
        rows.append(cells)
    head = ["Method", "n", *[escape(LABELS[c]) for c in metrics]]
    return (
        "<h2>Faithfulness scores</h2>"
        '<p class="muted">Mean over the images ± half-width of the 95% t-interval; ↑ higher is '
        "better, ↓ lower is better. Deletion AUC: how fast the explained class's probability "
        "falls as the most important pixels are removed; insertion AUC: how fast it rises as "
        "they are revealed; Average Drop: the confidence lost when only the map's pixels are "
        "kept; ROAD: the confidence change after imputing the most (MoRF) or least (LeRF) "
        "relevant half of the pixels.</p>" + _table(head, rows, range(1, len(head)))
    )


def _image_summary(report: Any) -> str:
    head = ["Image", "Predicted", "Probability"]
    if any(r.attention for r in report.images):
        head.append("Attention branch")
    head.append("Unlike the training data")
    scored = report.scored and report.images
    if scored:
        for n in report.methods:
            short = escape(get_method(n).short or get_method(n).title)
            head += [f"{short} deletion AUC ↓", f"{short} insertion AUC ↑"]
    rows = []
    for i, r in enumerate(report.images):
        row = [f'<a href="#image-{i}">{escape(r.name)}</a>', escape(r.predicted),
               _num(r.probability)]  # fmt: skip
        if "Attention branch" in head:
            row.append(escape(r.attention[0][0]) if r.attention else "—")
        row.append("no calibration" if r.unlike is None else ("<b>yes</b>" if r.unlike else "no"))
        if scored:
            for n in report.methods:
                values = r.scores.get(n, {})
                row += [_num(values.get("deletion_auc")), _num(values.get("insertion_auc"))]
        rows.append(row)
    numeric = {2, *range(len(head) - 2 * len(report.methods) * bool(scored), len(head))}
    return "<h2>Summary</h2>" + _table(head, rows, numeric)


def _skipped(report: Any) -> str:
    if not report.skipped:
        return ""
    rows = [[escape(s.name), escape(s.reason)] for s in report.skipped]
    return "<h2>Skipped</h2>" + _table(["Input", "Reason"], rows)


def _topk_table(title: str, items: list[tuple[str, float]]) -> str:
    rows = [[escape(name), f"{p:.3f}"] for name, p in items]
    table = _table(["Class", "Probability"], rows, {1})
    return f"<div><b>{escape(title)}</b>{table}</div>"


def _image(report: Any, i: int, r: Any) -> str:
    figures = [f"<figure>{_img(r.view, 'image/jpeg', r.name)}"
               "<figcaption>What the model saw</figcaption></figure>"]  # fmt: skip
    for method, v in r.maps.items():
        title = get_method(method).title
        of = "" if get_method(method).class_agnostic else f" of {v.target}"
        figures.append(
            f"<figure>{_img(v.overlay, 'image/jpeg', f'{title} over {r.name}')}"
            f"<figcaption>{escape(title + of)}</figcaption></figure>"
            f"<figure>{_img(v.raw, 'image/png', f'{title} raw map', 'raw')}"
            f"<figcaption>{escape(title)} raw map, {v.raw_shape[0]}×{v.raw_shape[1]}, "
            f"{v.raw_range[0]:.3g}…{v.raw_range[1]:.3g}</figcaption></figure>"
        )
    unlike = ' class="unlike"' if r.unlike else ""
    if report.multitask:
        preds = _topk_table("Most probable attributes (P present)", r.perception)
    else:
        branch = "Perception branch (final prediction)" if r.attention else "Model"
        preds = _topk_table(branch, r.perception)
        if r.attention:
            preds += _topk_table("Attention branch", r.attention)
    scores = ""
    if r.scores:
        from abn.metrics.scorecard import LABELS

        metrics = [m for m in LABELS if any(m in v for v in r.scores.values())]
        rows = [[escape(get_method(n).title), *[_num(v.get(m)) for m in metrics]]
                for n, v in r.scores.items()]  # fmt: skip
        head = ["Method", *[escape(LABELS[m]) for m in metrics]]
        scores = _table(head, rows, range(1, len(head)))
    return (
        f'<section class="image" id="image-{i}"><h2>{escape(r.name)}</h2>'
        f'<p class="muted">{escape(r.fit)}</p>'
        f"<p{unlike}><b>Unlike the training data?</b> {escape(r.familiarity)}</p>"
        f'<div class="maps">{"".join(figures)}</div>'
        f'<div class="maps">{preds}</div>{scores}</section>'
    )


def render(report: Any) -> str:
    """The whole page."""
    body = (
        _header(report)
        + _score_summary(report)
        + (_image_summary(report) if report.images else "<p>No image could be read.</p>")
        + _skipped(report)
        + "".join(_image(report, i, r) for i, r in enumerate(report.images))
    )
    title = escape(f"ABN batch report · {report.model.name}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
