"""One self-contained HTML page: the figures as base64 data URIs, the result and the config."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..search import claim_line, claims_lines
from ..size import KIB_BITS
from ._data import ReportData

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""


def _table(header: list[str], rows: list[list[object]], cls: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(path: Path, alt: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _result_row(name: str, m: dict, ratio: float) -> list[object]:
    return [name, f"{m['val_accuracy']:.2%}", f"{m['test_accuracy']:.2%}",
            f"{m['size_kib']:.2f}", f"{ratio:.1f}x", f"{m['epochs']:g}"]  # fmt: skip


def _choice_notes(r: dict) -> list[str]:
    """Why this individual was chosen, and its bit operations beside the FP32 model's."""
    notes = []
    if r.get("selection"):
        sel = r["selection"]
        notes.append(f"<p>Chosen by the {html.escape(sel['rule'])} rule: "
                     f"{html.escape(sel['reason'])}.</p>")  # fmt: skip
    ch_bops, fp_bops = r["chosen"].get("bops"), r["fp32"].get("bops")
    if ch_bops and fp_bops:
        notes.append(f"<p>Bit operations per sample: chosen {ch_bops:.4g}, FP32 {fp_bops:.4g} "
                     f"({fp_bops / ch_bops:.1f}x fewer).</p>")  # fmt: skip
    return notes


def render_html(data: ReportData, images: dict[str, Path], path: str | Path) -> Path:
    """Write the page; ``images`` maps a caption to a PNG file, embedded in the page."""
    r = data.result
    ch = r["chosen"]
    result_rows = [
        _result_row(name, r[key], 1.0)
        for name, key in (("FP32 baseline", "fp32"), ("FP32 distilled", "fp32_distilled"))
        if key in r
    ]
    result_rows += [
        _result_row(f"uniform QAT {u['bits']}-bit", u, u["compression_ratio"])
        for u in r.get("uniform_qat", [])
        if "failed" not in u
    ]
    for c in r.get("final_candidates") or [{**ch, "chosen": True}]:
        name = f"MOGAQNN ({'chosen, ' if c['chosen'] else ''}trial {c['trial']})"
        result_rows.append(_result_row(name, {**c, "epochs": ch["epochs"]},
                                       c["compression_ratio"]))  # fmt: skip
    ref_rows = [[p.label, f"{1 - p.error:.2%}", f"{p.size_bits / KIB_BITS:.2f}"]
                for p in data.references]  # fmt: skip
    layer_rows = [[p.layer, p.weight_bits, p.act_bits, f"{p.width} → {p.new_width}",
                   f"{p.ratio:.2f}"] for p in data.policy]  # fmt: skip
    s = r["search"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>MOGAQNN report: {html.escape(data.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>MOGAQNN report: {html.escape(data.title)}</h1>",
        f"<p>Run directory <code>{html.escape(str(data.run_dir))}</code>, seed {r['seed']}, "
        f"mogaqnn {html.escape(str(r.get('mogaqnn_version', '?')))}. Search: "
        f"{s['evaluations']} evaluations ({s['trained']} trained, {s['cache_hits']} cache "
        f"hits, {s['failed']} failed).</p>",
        "<h2>Result</h2>",
        _table(["model", "val acc", "test acc", "size KiB", "compression", "epochs"],
               result_rows, "result"),
        *_choice_notes(r),
        *(f"<p>{html.escape(line)}</p>" for line in [claim_line(r), *claims_lines(r)] if line),
        "<h2>Uniform-bit references (search budget, val accuracy)</h2>",
        _table(["individual", "val acc", "size KiB"], ref_rows, "references")
        if ref_rows else f"<p>{html.escape(data.references_note)}</p>",
    ]  # fmt: skip
    for caption, img in images.items():
        parts += [f"<h2>{html.escape(caption)}</h2>", _img(img, caption)]
    parts += [
        "<h2>Bit widths and widths per layer</h2>",
        _table(["layer", "weight bits", "act bits", "width", "ratio"], layer_rows, "policy"),
        "<h2>Config</h2>",
        f"<pre>{html.escape(json.dumps(data.config, indent=2))}</pre>",
        "</body></html>",
    ]
    target = Path(path)
    target.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return target
