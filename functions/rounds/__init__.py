"""The round step Lambda (handler ``rounds.app.lambda_handler``)."""
