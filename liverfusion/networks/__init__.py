"""The networks as PyTorch modules: our attention-fusion network (`fusion`, `attention`), the MONAI baselines of its
benchmark (`baselines`) and the port of KU Leuven's liver and lesion U-Nets (`kuleuven_unet`). Nothing here reads
images or bundles; `liverfusion.models` wraps each in the interface the pipeline uses."""
