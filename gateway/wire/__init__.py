"""The device wire format: topics, message splitting, COSE_Mac0, events, status, tickets and commands.

The only place that knows the bytes a device sends and takes."""
