"""`aurora-sync demo`: the whole product on the embedded local stack, narrated."""
