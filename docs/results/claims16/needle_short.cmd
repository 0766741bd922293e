.venv/bin/longvid probe --task needle --frames 16 --extend none --pooling uniform,progressive --samples 100 --threads 1 --out docs/results/claims16
