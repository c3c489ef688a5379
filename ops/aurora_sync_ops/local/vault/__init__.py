"""OpenBao (a real Vault-API server) plus a gateway that adds Vault's ``aws`` IAM auth method."""
