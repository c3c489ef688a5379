"""Planning: what a run exports, table by table (the planner Lambda's stage).

``plan`` parses the execution input and turns each table's config and watermark into a work
item; ``watermarks`` reads where each table's last merged run left off; ``tables`` runs the
schema step and the per-table loop against Aurora and Snowflake; ``executions`` asks Step
Functions for earlier running executions (single flight).
"""
