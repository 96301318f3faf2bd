"""Catalogue (SQLite), vector index (FAISS), bulk ingest and search; no torch at import."""
