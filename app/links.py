"""Shareable links: the page's query parameters, read once with a clear warning for what does not
fit, kept in step with what the page shows, and offered as one link to copy.

Parameters (each page uses those that apply): ``?model=`` (:mod:`app.models`), ``?image=``
(:mod:`app.images`), ``?method=`` (repeatable: Inspect's method, Compare's and Scorecard's
post-hoc methods) and ``?target=`` (the class a map explains, or a word for a page's special
choice such as Compare's ``each-model``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode

import streamlit as st

METHOD = "method"
TARGET = "target"
NONE = "none"  # a list parameter chosen empty (no parameter means the page's default)
ORDER = ("model", METHOD, TARGET, "image")  # the copied link's parameters, in this order


def resolve(
    values: Sequence[str], options: Sequence[str], tokens: Mapping[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """The ``options`` that link ``values`` name, in order and without repeats, and the values
    that name none. A value names an option by itself, by its word in ``tokens`` (option →
    word; case-insensitive), or with its ``+`` signs read as spaces (an unencoded
    ``gradcam++`` arrives as ``gradcam``)."""
    words = {w.lower(): o for o, w in (tokens or {}).items() if o in options}
    found: list[str] = []
    unknown: list[str] = []
    for raw in values:
        value = raw.strip()
        option = next(
            (o for o in (raw.replace(" ", "+").strip(), value) if o in options),
            words.get(value.lower()),
        )
        if option is None:
            unknown.append(value)
        elif option not in found:
            found.append(option)
    return found, unknown


def warn(param: str, unknown: Sequence[str], what: str, fallback: str) -> None:
    """Say in the page which link values were not understood and what is shown instead."""
    st.warning(
        f"Not {what}: {', '.join(repr(u) for u in unknown)} — from the page's link "
        f"(`?{param}=`); showing {fallback} instead.",
        icon=":material/link_off:",
    )


def initial_one(
    param: str,
    options: Sequence[str],
    default: str,
    what: str,
    tokens: Mapping[str, str] | None = None,
    shown: Callable[[str], str] = str,
) -> str:
    """The option the link's ``?param=`` names (its first, if several), else ``default``;
    values that name no option are warned about (``what``: e.g. "a method for this model";
    ``shown``: an option's name in the page, e.g. a method's title)."""
    found, unknown = resolve(st.query_params.get_all(param), options, tokens)
    if unknown and not found:
        warn(param, unknown, what, shown(default))
    return found[0] if found else default


def initial_many(
    param: str,
    options: Sequence[str],
    default: Sequence[str],
    what: str,
    tokens: Mapping[str, str] | None = None,
    shown: Callable[[str], str] = str,
) -> list[str]:
    """The options the link's repeated ``?param=`` names (``none``: an empty choice), else
    ``default``; values that name no option are warned about and left out."""
    values = st.query_params.get_all(param)
    if [v.strip().lower() for v in values] == [NONE]:
        return []
    found, unknown = resolve(values, options, tokens)
    if unknown:
        rest = ", ".join(map(shown, found or default)) or "none"
        rest = rest if found else f"the default ({rest})"
        warn(param, unknown, what, rest)
    return found if found else list(default)


def write(
    param: str,
    values: Sequence[str],
    default: Sequence[str] = (),
    tokens: Mapping[str, str] | None = None,
) -> None:
    """Keep ``?param=`` naming ``values`` (by their ``tokens`` word where they have one): no
    parameter when they are the page's ``default``, ``none`` for an empty choice that is not."""
    values = [(tokens or {}).get(v, v) for v in values]
    default = [(tokens or {}).get(v, v) for v in default]
    wanted = [] if values == default else values or [NONE]
    if st.query_params.get_all(param) == wanted:
        return
    if wanted:
        st.query_params[param] = wanted
    else:
        del st.query_params[param]


def multiselect(
    label: str,
    options: Sequence[str],
    default: Sequence[str],
    what: str,
    key: str,
    param: str = METHOD,
    shown: Callable[[str], str] = str,
    **kwargs,
) -> list[str]:
    """``st.multiselect`` that starts from the link's ``?param=`` and keeps it in step."""
    start = initial_many(param, options, default, what, shown=shown)
    chosen = st.multiselect(label, options, default=start, format_func=shown, key=key, **kwargs)
    write(param, chosen, default)
    return chosen


def selectbox(
    label: str,
    options: Sequence[str],
    default: str,
    what: str,
    key: str,
    param: str = TARGET,
    tokens: Mapping[str, str] | None = None,
    **kwargs,
) -> str:
    """``st.selectbox`` that starts from the link's ``?param=`` and keeps it in step (special
    options travel as their ``tokens`` word)."""
    start = initial_one(param, options, default, what, tokens)
    choice = st.selectbox(label, options, index=list(options).index(start), key=key, **kwargs)
    write(param, [choice], [default], tokens)
    return choice


def share_query(always: Mapping[str, str | None] | None = None) -> str:
    """The page's query string (``?…``), with ``always``'s parameters added where the page
    left them out as its defaults (a copied link must not depend on the defaults of the day:
    a new model shipped could change them)."""
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    for key, value in (always or {}).items():
        if value and not params.get(key):
            params[key] = [value]
    ordered = sorted(params, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))
    query = urlencode([(k, v) for k in ordered for v in params[k]])
    return f"?{query}" if query else ""


def share_box(always: Mapping[str, str | None] | None = None) -> None:
    """A "Copy link" box in the sidebar: this page with its model, methods and gallery images
    (:func:`share_query`); uploads and camera photos cannot travel in a link."""
    base = st.context.url or ""  # None outside a browser (tests): the query alone
    with st.sidebar:
        st.markdown("**Copy link**", help="The link reopens this page on the same model, "
                    "methods, target and gallery images. Uploaded images are not in it.")  # fmt: skip
        st.code(base + share_query(always), language=None, wrap_lines=True)
