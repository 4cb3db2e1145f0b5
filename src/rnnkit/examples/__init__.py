"""Worked examples from the introductions rnnkit starts from."""
