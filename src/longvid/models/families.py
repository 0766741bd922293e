"""The supported families' names, torch-free (for help texts). ``registry.ADAPTERS`` is what
serves them; tests/test_architecture.py checks that the two agree."""

FAMILIES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "llava_next_video", "video_llava")
