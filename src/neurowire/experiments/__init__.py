"""The paper's experiments, built on the public API (the library never imports them)."""
