"""On-disk caches of compiled code, shared by every process of one user."""
