"""groot_kit: learn, fine-tune and deploy a GR00T-N1-style vision-language-action model."""

__version__ = "0.1.0"
