"""The coordinator service. Builds the same Coordinator the standalone runner uses, without any ML framework."""
