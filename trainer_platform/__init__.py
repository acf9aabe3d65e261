"""trainer_platform: declarative, config-driven LLM post-training on verl."""

__version__ = "0.1.0"
