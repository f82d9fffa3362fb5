"""Engines: the connection to WhatsApp behind one interface."""
