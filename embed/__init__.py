"""Images in, vectors out: photo decoding and the embedding models (the only torch user)."""
