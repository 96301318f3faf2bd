"""`artefact audit verify`: check the audit trail's hash chain (every row, every search record)."""

from __future__ import annotations

import argparse
from contextlib import closing

from artefact.api.cli.common import EXIT_ERROR, EXIT_OK, UsageError, print_json
from artefact.api.http.audit import AuditLog, ChainCheck
from artefact.api.settings import Settings


def verify_trail(settings: Settings) -> ChainCheck:
    """The chain check of the home's audit log (raises UsageError when there is none)."""
    paths = settings.paths
    if not paths.audit.is_file():
        raise UsageError(f"no audit log in {settings.home}: it is written by `artefact serve`")
    with closing(AuditLog(paths.audit, paths.audit_photos, keep_photos=False,
                          retention_days=settings.audit_retention_days)) as audit:
        return audit.verify()


def format_check(check: ChainCheck) -> str:
    if check.ok:
        return (f"OK: {check.rows} rows ({check.searches} search records), chain intact\n"
                f"head {check.head}  (note it elsewhere: removing rows from the end shows only against it)")
    return f"BROKEN: {check.problem}\n{check.rows} rows before it are intact (last good hash {check.head})"


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    check = verify_trail(settings)
    if args.json:
        print_json({"ok": check.ok, "rows": check.rows, "searches": check.searches, "head": check.head,
                    "problem": check.problem, "broken_row": check.broken_seq})
    else:
        print(format_check(check))
    return EXIT_OK if check.ok else EXIT_ERROR
