"""The demo: walks a running system through a grant, a send, a STOP and an audit."""
