"""Print the Markdown table of the shipped models from their cards (for README.md).

python scripts/models_table.py
python scripts/models_table.py --attributes ABN.safetensors PLAIN.safetensors  # per attribute
"""

from __future__ import annotations

import argparse
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


def attribute_table(abn_path: Path, plain_path: Path) -> str:
    """Per-attribute test accuracy of a multi-task ABN beside its plain baseline (Markdown)."""
    cards = [abn.read_card(p) for p in (abn_path, plain_path)]
    keys = [f"{c.dataset}/{c.splits.get('test', 'test')}" for c in cards]
    ours, base = (c.metrics[k]["per_attribute"] for c, k in zip(cards, keys, strict=True))
    lines = ["| attribute | ABN perception | ABN attention branch | plain | ABN − plain |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in cards[0].class_names:
        a, b = ours[name], base[name]
        delta = a["per"] - b["per"]
        lines.append(
            f"| {name} | {a['per']:.2f} | {a['att']:.2f} | {b['per']:.2f} | {delta:+.2f} |"
        )
    means = [cards[0].metrics[keys[0]], cards[1].metrics[keys[1]]]
    delta = means[0]["per_mean_acc"] - means[1]["per_mean_acc"]
    lines.append(f"| **mean of {len(cards[0].class_names)}** | **{means[0]['per_mean_acc']:.2f}** | "
                 f"**{means[0]['att_mean_acc']:.2f}** | **{means[1]['per_mean_acc']:.2f}** | "
                 f"**{delta:+.2f}** |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--attributes", nargs=2, type=Path, metavar=("ABN", "PLAIN"),
                   help="per-attribute table of a multi-task ABN beside its plain baseline")  # fmt: skip
    args = p.parse_args(argv)
    if args.attributes:
        print(attribute_table(*args.attributes))
        return
    print("| file | model | test split | perception | attention branch | epochs | "
          "training time, hardware | size |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(ASSETS.glob("*.safetensors")):
        print(row(path))


if __name__ == "__main__":
    main()
