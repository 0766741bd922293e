.venv/bin/longvid probe --task needle --frames 16,64,256 --depths 0:1:0.25 --extend none,visual-yarn,visual-pi --samples 6 --out docs/results/depth
