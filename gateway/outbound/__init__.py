"""From the store to the platform: the forwarder, its HTTP client and sign-in."""
