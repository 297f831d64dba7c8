"""The optional sender delivers dispatched messages to the WhatsApp Cloud API."""
