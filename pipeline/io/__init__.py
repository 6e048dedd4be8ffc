"""Reading and writing stores and images: sources, image files, Zarr stores, locks, edited masks."""
