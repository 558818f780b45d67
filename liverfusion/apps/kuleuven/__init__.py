"""KU Leuven's pyliverlesionseg models: their prediction recipe (`predict`) and the conversion of their published
Keras weights into a bundle (`import_weights`)."""
