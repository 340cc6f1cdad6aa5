"""Storage: the `Store` protocol and its records (base.py), and the SQLite implementation (sqlite/)."""
