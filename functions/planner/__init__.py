"""The planner Lambda (handler ``planner.app.lambda_handler``)."""
