.venv/bin/longvid probe --task order --frames 16,32,64,128,256,512 --sweep --samples 16 --out docs/results
