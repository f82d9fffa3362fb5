"""The simulator: a fake WhatsApp service (``wagate sim-server``) and the ``sim`` engine that connects to it."""
