//! Internals that benchmarks and fuzz targets drive directly (feature `testing` only).
