"""The CT to MRI translator: applying it (`translate`) and training it (`training`)."""
