"""LiverFusion core: multimodal liver tumour segmentation and characterisation.

Plain Python (numpy, SimpleITK, torch, MONAI); never imports slicer, qt or ctk, so the same code
serves the Slicer modules, `Slicer --python-script` batches and the `liverfusion` command line.
"""

__version__ = "0.1.0"
