"""wagate: a self-hosted WhatsApp session gateway that keeps many tenants' sessions alive for good."""

__version__ = "0.1.0"
