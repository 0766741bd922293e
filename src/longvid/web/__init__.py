"""The web page: ``longvid serve`` (see ``server``)."""
