"""The gate takes one decision per send request, and publishes the send when consent
allows it."""
