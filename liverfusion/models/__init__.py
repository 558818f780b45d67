"""Model bundles: `store` reads and writes them (MONAI bundle layout, SHA-256 verified)."""
