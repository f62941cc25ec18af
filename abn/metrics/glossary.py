"""What each number means, in plain words, and which direction is better.

The one place for these texts: the dashboard's tooltips and "How to read these numbers" panels
and ``docs/metrics.md`` (its glossary table is :func:`markdown_table`, checked by a test) all
take them from :data:`TERMS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Term:
    """One metric or table column: its display ``name``, what it means, and which direction
    is ``better`` (``"higher"``, ``"lower"``, or ``None`` where neither is)."""

    name: str
    text: str
    better: str | None = None

    @property
    def direction(self) -> str:
        """ "Higher is better." / "Lower is better." / "" (a description, not a score)."""
        return f"{self.better.capitalize()} is better." if self.better else ""

    @property
    def help(self) -> str:
        """The tooltip: the meaning and the better direction."""
        return f"{self.text} {self.direction}".strip()


TERMS: dict[str, Term] = {
    # ----------------------------------------------------------- faithfulness (the scorecard)
    "deletion_auc": Term(
        "deletion AUC",
        "Pixels are removed (set to the mean colour) in the order the map ranks them, most "
        "important first, while the probability of the explained class is tracked; this is the "
        "area under that curve, from 0 to 1. If the map found what the model relies on, the "
        "probability falls fast and the area is small.",
        LOWER,
    ),
    "insertion_auc": Term(
        "insertion AUC",
        "The reverse of deletion: starting from a blurred copy, pixels are revealed in the map's "
        "order, most important first; the area under the probability curve, from 0 to 1. If the "
        "map found what the model relies on, the class comes back fast and the area is large.",
        HIGHER,
    ),
    "avg_drop": Term(
        "Average Drop %",
        "The image is multiplied by the map (scaled to 0…1), so only what the map highlights "
        "stays; the mean relative fall of the explained class's probability, in %. 0 means "
        "the highlighted regions alone convince the model as much as the whole image.",
        LOWER,
    ),
    "increase": Term(
        "Increase in Conf. %",
        "With the same masked image as Average Drop: the share of images, in %, on which the "
        "explained class becomes more probable when only what the map highlights is kept.",
        HIGHER,
    ),
    "road_morf": Term(
        "ROAD MoRF",
        "Remove And Debias, most relevant first: the half of the pixels the map ranks highest "
        "is filled in from the neighbouring pixels (no tell-tale holes) and the change in the "
        "explained class's probability is reported (usually negative). A larger fall (a lower "
        "value) means the map found what matters.",
        LOWER,
    ),
    "road_lerf": Term(
        "ROAD LeRF",
        "Remove And Debias, least relevant first: the half of the pixels the map ranks lowest "
        "is filled in; the change in the explained class's probability. Near 0 (a small fall, a "
        "higher value) means the map rightly left those pixels out.",
        HIGHER,
    ),
    "sanity": Term(
        "sanity check (model randomisation)",
        "The model's weights are replaced by random ones, layer by layer from the output, and "
        "the map is computed again; the Spearman correlation of the last map with the "
        "original. A map that still looks the same does not depend on what the model learned: "
        "below 0.5 passes.",
        LOWER,
    ),
    "intervention": Term(
        "attention intervention",
        "ABN only: the model's own attention map is replaced (by a uniform, an inverted or "
        "another image's map) and the fall of the predicted class's probability is measured. "
        "A large fall shows the prediction really uses the map it shows.",
        HIGHER,
    ),
    # ----------------------------------------------------------- agreement (Compare)
    "spearman": Term(
        "Spearman ρ",
        "How alike two maps rank the pixels, from −1 (opposite) through 0 (unrelated) to 1 "
        "(the same order). It says whether two methods agree, not which one is right.",
    ),
    "iou": Term(
        "IoU of top 20%",
        "The overlap of the two maps' most important 20% of pixels: the shared pixels divided "
        "by the pixels in either, from 0 (no overlap) to 1 (the same region). Agreement, not "
        "correctness.",
    ),
    # ----------------------------------------------------------- the other columns
    "n": Term("n", "The number of images the figures are computed on."),
    "confidence": Term(
        "confidence", "The model's probability for the class the map explains, before masking."
    ),
    "correct": Term("correct", "The share of the images the model classifies correctly."),
    "seconds_per_image": Term(
        "seconds per image", "The time the method took to compute one image's map."
    ),
    "difference": Term(
        "Δ (paired difference)",
        "The method's score minus the reference map's on the same images, averaged. Whether a "
        "positive Δ is good depends on the metric's direction (see 'significantly better').",
    ),
    "ci_low": Term(
        "95% CI low", "The lower end of the 95% t-interval of the mean paired difference."
    ),
    "ci_high": Term(
        "95% CI high",
        "The upper end of the 95% t-interval; an interval that excludes 0 points to a real "
        "difference.",
    ),
    "p_holm": Term(
        "p (Holm)",
        "The paired t-test's p-value, adjusted with Holm's method for testing all the rows at "
        "once: the chance of a difference at least this large if the two maps were equally "
        "faithful.",
        LOWER,
    ),
    "better": Term(
        "significantly better",
        "The better of the two maps on this metric where p (Holm) ≤ 0.05; empty where the data "
        "cannot tell them apart.",
    ),
}


def term(key: str) -> Term:
    """The glossary entry of ``key``; a clear ``KeyError`` naming the known keys otherwise."""
    try:
        return TERMS[key]
    except KeyError:
        raise KeyError(f"no glossary entry for {key!r}; known: {', '.join(TERMS)}") from None


def help_text(key: str) -> str:
    """The tooltip of ``key``: what it means and which direction is better."""
    return term(key).help


def how_to_read(keys: Iterable[str]) -> str:
    """A Markdown list explaining ``keys``, one line each (a "How to read these numbers" panel)."""
    return "\n".join(f"- **{term(k).name}** — {term(k).help}" for k in keys)


def markdown_table(keys: Iterable[str] | None = None) -> str:
    """The glossary as a Markdown table (``docs/metrics.md`` holds it verbatim)."""
    rows = ["| number | what it means | better |", "|---|---|---|"]
    for k in TERMS if keys is None else keys:
        t = term(k)
        rows.append(f"| {t.name} | {t.text} | {t.better or '—'} |")
    return "\n".join(rows)
