"""Model files, datasets, IDX files and downloads: a leaf layer (imports only the base)."""
