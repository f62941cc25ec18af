"""Edit attention: change an ABN's attention map, see the prediction change, save the edits and
fine-tune the model from them (Mitsuhara et al., human-in-the-loop ABN)."""

from __future__ import annotations

import streamlit as st

from app import editor, layout, views
from app.compute import prepare
from app.config import edits_dir
from app.errors import error_boundary
from app.images import image_picker
from app.models import model_picker

layout.setup(
    "Edit attention",
    "ABN's perception branch runs on its attention map M(x), so editing the map changes the "
    "prediction: select cells of the map (box or lasso), erase, emphasise or set them, and the "
    "perception branch re-runs at once with the edited map (g(x) is computed once). Save edits to "
    "an edit set and fine-tune the model so that it attends where you said.",
    ":material/edit:",
)

ref = picked = None
with st.sidebar:
    with error_boundary("Choosing the model"):
        ref = model_picker("ABN model", editor.accept, editor.NEEDS, "edit_model")
    alpha, cmap = views.overlay_controls("edit")

if ref is None:
    st.info("Choose an ABN model in the sidebar (or load your own checkpoint) to start.")
    st.stop()

with error_boundary("Choosing the image"):
    attribute = editor.attribute_picker(ref.card, "edit")
    chosen = image_picker(ref.card, "edit")
    picked = chosen[0] if chosen else None
if picked is None:
    st.info("Choose an image from the gallery, upload one or take a photo.")
    st.stop()

with error_boundary("Editing the attention map"):
    ed = editor.editable(ref, picked, attribute)
    view = prepare(ref, picked).view
    key = editor.state_key(ref, picked, attribute)
    hist = editor.history(key, ed.map)
    h, w = ed.map.shape
    st.subheader(f"Attention map M(x) · {h}×{w} cells")
    left, right = st.columns([3, 2])
    with right:
        editor.action_panel(key, hist)
    with left:
        mode = st.radio("Select cells by", editor.SELECT_MODES, horizontal=True, key="edit_mode")
        if mode == "Brush":
            editor.brush_canvas(key, view, hist.current, alpha, cmap)
        else:
            editor.cell_chart(key, view, hist.current, alpha, cmap)
    after, seconds = editor.repredict(ed, hist.current)
    st.subheader("Prediction before → after the edit")
    editor.show_change(ed, after, seconds)
    editor.show_maps(view, ed.map, hist.current, alpha, cmap)

    st.subheader("Edit sets")
    es = folder = None
    with editor.edit_set_errors():
        folder = editor.set_picker(ref.card)
        es = editor.open_set(folder, ref)
    if folder is not None:
        a, b = st.columns(2)
        with a:
            label = editor.label_picker(ed, picked)
            author = st.text_input("Your name (optional)", key="edit_author")
        with b:
            note = st.text_input("Note (optional)", key="edit_note")
            save = st.button("Save edit", key="edit_save", type="primary", icon=":material/save:")
        if save:
            with editor.edit_set_errors():
                source = editor.dataset_source(
                    picked, ref.card, st.session_state.get("edit_source", "")
                )
                record = editor.save_edit(
                    folder, ref, ed, hist, picked, source, label, attribute, author, note
                )
                st.session_state[editor.CHOSEN_SET] = folder.name
                st.session_state[editor.SAVED] = f"Saved edit `{record.id}` to `{folder.name}`."
                st.rerun()
        if editor.SAVED in st.session_state:
            st.success(st.session_state.pop(editor.SAVED), icon=":material/save:")
    if es is not None:
        review = st.expander(f"Review `{folder.name}` ({len(es)} edits)", expanded=True)
        with review, editor.edit_set_errors():
            editor.review(es, cmap)
            editor.export_button(es, folder)
    with st.expander("Import an edit set (ZIP)"):
        upload = st.file_uploader("Edit set ZIP", type=["zip"], key="edit_import")
        if upload is not None and st.button("Import", key="edit_import_go"):
            with editor.edit_set_errors():
                imported = editor.import_zip(upload, edits_dir())
                st.success(f"Imported as `{imported.name}`: choose it above.")

    st.subheader("Fine-tune from the edits")
    with editor.edit_set_errors():
        editor.finetune_form(ref, es, folder)
    tuned_from, result = st.session_state.get(editor.FINETUNED, (None, None))
    if tuned_from == ref.key:  # the last fine-tuning of this model
        editor.show_finetuned(result)
