"""Coverage-guided fuzz targets (atheris) and their bounded runner; see README.md."""
