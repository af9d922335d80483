"""Serving: completions, the decoding loop, the model cache, detokenising and stop sequences."""
