"""From the broker to the store: the MQTT child process, the ingest loop, commands sent out."""
