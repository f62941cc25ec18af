"""Shared Streamlit pieces of the dashboard: pickers, views, the error boundary, layout.

Pages import from here and from :mod:`abn`; nothing in :mod:`abn` imports this package.
"""
