"""The three modules of an ABN as a Graphviz diagram (drawn, not a dataset image).

It reads on a light and a dark theme alike: the background is transparent, all dark text sits on
a light fill, and what lies on the page itself (edges, the edge label) is a mid grey.
"""

from __future__ import annotations

ABN_DOT = """
digraph ABN {
  rankdir=LR; bgcolor="transparent"; nodesep=0.3; ranksep=0.35; size="14,3";
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=15,
        color="#5b6b7f", fillcolor="#eef2f7", penwidth=1.2];
  edge [color="#7d8796", fontcolor="#7d8796", fontname="Helvetica", fontsize=13, penwidth=1.2];

  x   [label="input image x", shape=note, fillcolor="#ffffff"];
  fe  [label="Feature extractor\\ng(x)", fillcolor="#dbe8ff"];
  ab  [label="Attention branch\\nconv · K×1×1 conv · GAP", fillcolor="#ffe2c6"];
  m   [label="attention map M(x)", shape=parallelogram, fillcolor="#ffd29c"];
  mix [label="g'(x) = (1 + M(x)) · g(x)", shape=ellipse, fillcolor="#fff6d6"];
  pb  [label="Perception branch\\nrest of the backbone · FC", fillcolor="#d6f5df"];
  ya  [label="attention-branch\\nscores  (L_att)", shape=box, style="rounded,filled,dashed", fillcolor="#eef2f7"];
  yp  [label="final prediction\\n(L_per)", shape=box, style="rounded,filled,dashed", fillcolor="#eef2f7"];

  x -> fe -> ab -> m -> mix -> pb -> yp;
  fe -> mix [label="g(x)"];
  ab -> ya [style=dashed];
  {rank=same; ab; m}
}
"""
