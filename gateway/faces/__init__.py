"""What people and programs talk to: the HTTP API and dashboard, the CLI, exports and metrics text."""
