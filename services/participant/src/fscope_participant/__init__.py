"""The participant service: one FL client with its own data shard and backend."""
