"""Model-specific integrations (as MONAI's `apps/`): KU Leuven's liver and lesion models (`kuleuven`) and the CT to MRI
translator (`ct2mri`)."""
