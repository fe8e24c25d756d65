"""CosyVoice2 model code and exporter (inference only, TorchScript-scriptable).

Modules: hyperyaml (read cosyvoice2.yaml), config (sizes of a model dir), presets (tiny/full configs),
keys (official checkpoint key lists), load (strict checkpoint loading), llm (Qwen2LM), flow and hift
(token-to-mel and vocoder), bundle (write a bundle directory). Entry point: tools/export/export.py.
"""
