"""The verifier Lambda (handler ``verifier.app.lambda_handler``)."""
