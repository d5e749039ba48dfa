"""experts-first: build a llama.cpp fork with expert-level MoE offloading."""

__version__ = "0.1.0"
FORK_NAME = "experts-first"
