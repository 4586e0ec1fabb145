"""Runs last (file order): every server log of this run must be free of every password and
token the suite sent or received. Servers log at debug level in JSON here, the most verbose
they get. The one deliberate exception: with PORTCULLIS_SMTP_URL=log the log *is* the mail
transport (development only; the server warns at start), so the mail lines it prints carry
their links. Those lines, and nothing else, are skipped."""
import json

import secrets_seen


MAIL_MESSAGE = "mail (PORTCULLIS_SMTP_URL=log, not sent)"


def _is_logged_mail(line: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("msg") == MAIL_MESSAGE


def test_no_secret_in_any_server_log():
    logs = secrets_seen.all_logs()
    secrets = secrets_seen.SECRETS
    # Not vacuous: the suite ran servers and used credentials.
    assert len(logs) >= 3, f"only {len(logs)} server logs were recorded"
    assert len(secrets) >= 20, f"only {len(secrets)} secrets were recorded"
    leaks = []
    for path, text in logs:
        for number, line in enumerate(text.splitlines(), 1):
            if _is_logged_mail(line):
                continue
            for secret in secrets:
                if secret in line:
                    leaks.append(f"{path}:{number}: contains a secret starting {secret[:6]!r}")
    assert not leaks, "secrets in server logs:\n" + "\n".join(leaks[:20])
