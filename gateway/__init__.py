"""Gateway: verifies, stores and forwards scan events from the counter devices."""
