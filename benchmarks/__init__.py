"""Speed and quality of medgan_nb, side by side with the original notebook's recipe.

``python -m benchmarks`` (``make bench``) times, in one process, the project's
code and the transcription of the original in `benchmarks.seed_reference`:
degradation throughput, one training iteration, data loading, inference
latency (every backend), and peak memory. It prints a table and writes
``output/bench/results.json``. ``python -m benchmarks quality`` trains the
lite and the seed-architecture generator for the same wall-clock budget and
adds their PSNR gains to the same file. Nothing here asserts a timing.
"""
