"""What the gateway decides and keeps: judging scans, the ledger, tickets, rates, alerts, devices, the outbox
plan, users and device commands."""
