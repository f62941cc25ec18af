"""Print the Markdown table of the shipped models from their cards (for README.md)."""

from __future__ import annotations

from pathlib import Path

import abn

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def row(path: Path) -> str:
    card = abn.read_card(path)
    split = card.splits.get("test", "test")
    m = card.metrics[f"{card.dataset}/{split}"]
    if "per_top1_err" in m:
        per = f"{100 - m['per_top1_err']:.2f}% top-1"
        att = f"{100 - m['att_top1_err']:.2f}%" if "att_top1_err" in m else "—"
    else:
        per = f"{m['per_mean_acc']:.2f}% mean of 40"
        att = f"{m['att_mean_acc']:.2f}%" if "att_mean_acc" in m else "—"
    t = card.training
    minutes = t.get("train_seconds_total", 0) / 60
    return (
        f"| `{path.name}` | {card.arch} {card.variant} | {card.dataset}/{split} (n={m['n']}) | "
        f"{per} | {att} | {t['epochs']}/{card.recipe['epochs']} | {minutes:.0f} min, "
        f"{t.get('hardware', '?')} | {path.stat().st_size / 1e6:.1f} MB |"
    )


def main() -> None:
    print("| file | model | test split | perception | attention branch | epochs | "
          "training time, hardware | size |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(ASSETS.glob("*.safetensors")):
        print(row(path))


if __name__ == "__main__":
    main()
