"""Model bundles and the one interface every kind of segmentation model offers the pipeline.

`store` reads and writes bundles (MONAI bundle layout, SHA-256 verified) and `store.load_model` wraps one in the
class of its kind; `interface` says what a kind does (`SegmentationModel`) and returns (`Prediction`); `registry`
maps a bundle's kind (`inference.json`'s "architecture") to its class; `grid` holds the kinds that see every input
at once on one canonical grid (the fusion network and the MONAI baselines)."""
