"""Local emulation of Aurora's ``aws_s3``/``aws_commons`` export functions.

``install.sql`` creates the SQL side in a database; ``uploader.py`` is the program it runs
through ``COPY ... TO PROGRAM``. See both files for how an export stays all-or-nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg2 import sql

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALL_SQL = PACKAGE_DIR / "install.sql"
UPLOADER = PACKAGE_DIR / "uploader.py"


def install(conn: Any, uploader_command: str, state_dir: Path) -> None:
    """Create or replace the emulation in the database ``conn`` points at (as a superuser).

    ``uploader_command`` is the shell-quoted command prefix (interpreter and program).
    """
    text = INSTALL_SQL.read_text()
    for placeholder, value in (("@UPLOADER@", uploader_command), ("@STATE_DIR@", str(state_dir))):
        text = text.replace(placeholder, sql.Literal(value).as_string(conn))
    with conn.cursor() as cur:
        cur.execute(text)
