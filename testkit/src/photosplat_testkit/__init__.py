"""PhotoSplat's test kit: synthetic scenes with known cameras, pose comparison, service processes and
a cuttable broker proxy for the tests and benchmarks. Installed with the tests, never in an image."""
