.venv/bin/longvid probe --task order --frames 256 --extend linear,yarn,visual-pi --pooling uniform,progressive --samples 100 --threads 1 --out docs/results/claims256
