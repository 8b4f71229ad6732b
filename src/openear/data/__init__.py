"""Data shipped with openear: the taxonomy preset, model artefacts and the demo sample."""
