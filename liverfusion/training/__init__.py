"""Training: case folders on the model grid (`dataset`), a hospital export as a case folder (`dataset_import`) and the
training loop (`trainer`)."""
