"""Optional integrations of the Mnemo SDK with other libraries, each behind its own extra."""
