.venv/bin/longvid probe --task needle --frames 16,32,64,128,256,512 --sweep --samples 16 --out docs/results
