"""Long-video benchmarks: loaders, prompts, answer parsing, resumable runs, lmms-eval plugin."""
