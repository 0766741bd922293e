.venv/bin/longvid probe --task needle --frames 256 --extend none,visual-yarn --pooling uniform,uniform:4,progressive,uniqueness:0.25,merge:0.25 --samples 100 --threads 1 --out docs/results/reduce
