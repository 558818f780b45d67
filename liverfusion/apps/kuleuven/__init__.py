"""KU Leuven's pyliverlesionseg models: their prediction recipe (`predict`), the segmentation model kind the
pipeline runs them as (`model`) and the conversion of their published Keras weights into a bundle
(`import_weights`)."""
