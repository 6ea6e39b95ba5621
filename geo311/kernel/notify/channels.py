"""The channels a notice goes out through: SMTP, an SMS provider over HTTP, webhooks.

Every failure is a ``DeliveryError`` that says whether the message may have reached the
other side, because that decides whether trying again could send it twice:

- ``transient``: certainly not delivered, try again later (server down, 4xx reply);
- ``permanent``: certainly not delivered, and trying again will not help (5xx, bad address);
- ``ambiguous``: it may have been delivered (the line dropped while waiting for the answer).

SMTP is split around the one step that can be ambiguous: MAIL FROM and RCPT TO are sent
before the caller records the hand-over, and only the wait for the reply to the final "."
of DATA is ambiguous. A failure while the message itself is still being written cannot have
delivered it: a server must not accept a message whose terminating "." it never received.
"""

from __future__ import annotations

import functools
import json
import re
import select
import smtplib
import ssl
import time
from typing import Literal, Protocol

import httpx

from geo311.kernel.notify import addresses, targets
from geo311.kernel.notify.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature_header
from geo311.kernel.settings import SmsSettings, SmtpSettings

Severity = Literal["transient", "permanent", "ambiguous"]


class DeliveryError(Exception):
    """A message that did not (certainly) get through; ``severity`` says what to do."""

    def __init__(self, severity: Severity, detail: str) -> None:
        super().__init__(detail)
        self.severity: Severity = severity
        self.detail = detail


def _smtp_severity(code: int) -> Severity:
    return "transient" if 400 <= code < 500 else "permanent"


def _reply_text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


_LEADING_DOT = re.compile(rb"(?m)^\.")
# The sender is the same on every message: parsed once.
_quoted_sender = functools.lru_cache(maxsize=8)(smtplib.quoteaddr)


class SmtpSession:
    """One SMTP connection, opened on first use and reused for many messages.

    Per message: ``begin`` (MAIL FROM + RCPT TO), then the caller records the hand-over,
    then ``send_data``. ``abort`` resets a begun transaction that will not be sent.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            smtp: smtplib.SMTP
            if s.ssl:
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout_s, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                smtp.login(s.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError("transient", f"SMTP login refused: {exc.smtp_code}") from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                "transient", f"SMTP server refused the session: {exc.smtp_code}"
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                "transient", f"cannot reach the SMTP server {s.host}:{s.port}: {exc}"
            ) from exc
        return smtp

    @property
    def connected(self) -> bool:
        """Whether a connection is open (after a failure it is dropped)."""
        return self._smtp is not None

    def drop_if_closed(self) -> None:
        """Forget the connection if the server hung up while it sat idle, without a round
        trip: between messages a server says nothing unless it is closing (a 421 on its
        idle timeout, or end of file), so a readable socket means it is gone."""
        smtp = self._smtp
        sock = getattr(smtp, "sock", None)
        if smtp is None:
            return
        if sock is None:
            self._drop()
            return
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if poller.poll(0):
            self._drop()

    def begin(self, sender: str, recipient: str) -> None:
        """Send MAIL FROM and RCPT TO (connecting first if needed); raise DeliveryError."""
        if not addresses.sendable(recipient):
            # smtplib would re-parse it and could send to another address inside it.
            raise DeliveryError(
                "permanent", f"{recipient!r} is not exactly one e-mail address; not sent"
            )
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        try:
            # Not smtp.mail() and smtp.rcpt(): they parse each address again, and a sendable
            # address is exactly what goes between the brackets (the sender is parsed once).
            code, reply = smtp.docmd("mail", f"FROM:{_quoted_sender(sender)}")
            if code != 250:
                smtp.rset()
                raise DeliveryError(
                    _smtp_severity(code), f"MAIL FROM refused: {code} {_reply_text(reply)}"
                )
            code, reply = smtp.docmd("rcpt", f"TO:<{recipient}>")
            if code not in (250, 251):
                smtp.rset()
                raise DeliveryError(
                    _smtp_severity(code),
                    f"recipient {recipient} refused: {code} {_reply_text(reply)}",
                )
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise DeliveryError("transient", f"SMTP connection lost: {exc}") from exc

    def abort(self) -> None:
        """Reset the begun transaction (nothing is delivered)."""
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def send_data(self, message: bytes) -> str:
        """Send DATA with ``message`` (CRLF line ends); return the server's reply text."""
        smtp = self._smtp
        if smtp is None:
            raise DeliveryError("transient", "no SMTP transaction was begun")
        try:
            smtp.putcmd("data")
            code, reply = smtp.getreply()
            if code != 354:
                smtp.rset()
                raise DeliveryError(_smtp_severity(code), f"DATA refused: {code}")
            body = _LEADING_DOT.sub(b"..", message)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            smtp.send(body + b".\r\n")
        except DeliveryError:
            raise
        except (OSError, smtplib.SMTPException) as exc:
            # The final "." did not leave: the server cannot have accepted the message.
            self._drop()
            raise DeliveryError("transient", f"SMTP connection lost before the end: {exc}") from exc
        try:
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise DeliveryError(
                "ambiguous", f"no answer from the SMTP server after the message: {exc}"
            ) from exc
        if code != 250:
            raise DeliveryError(
                _smtp_severity(code), f"message refused: {code} {_reply_text(reply)}"
            )
        return _reply_text(reply)

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._drop()


class SmsProvider(Protocol):
    """Sends one text message; returns the provider's message id or raises DeliveryError."""

    def send(self, *, to: str, body: str, idempotency_key: str) -> str: ...


class TwilioSms:
    """A Twilio-style Messages API: form POST to /2010-04-01/Accounts/{sid}/Messages.json
    with To, From and Body, HTTP basic auth; 201 with the message ``sid``."""

    def __init__(self, settings: SmsSettings, *, client: httpx.Client | None = None) -> None:
        if not settings.account_sid or not settings.auth_token or not settings.from_number:
            raise ValueError(
                "the SMS provider needs account_sid, auth_token and from_number "
                "(GEO311_NOTIFY__SMS__…)"
            )
        self.settings = settings
        self._url = (
            f"{settings.base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{settings.account_sid}/Messages.json"
        )
        self._client = client or httpx.Client(timeout=settings.timeout_s)
        self._auth = (settings.account_sid, settings.auth_token.get_secret_value())

    def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        assert self.settings.from_number is not None
        response = _post(
            self._client,
            self._url,
            data={"To": to, "From": self.settings.from_number, "Body": body},
            headers={IDEMPOTENCY_HEADER: idempotency_key},
            auth=self._auth,
            # A request that may have reached the provider may have sent the text.
            ambiguous_after_send=True,
        )
        if response.status_code in (200, 201):
            try:
                return str(response.json().get("sid") or "")
            except ValueError:
                return ""
        detail = f"SMS provider answered {response.status_code}: {response.text[:200]}"
        raise DeliveryError(_http_severity(response.status_code), detail)

    def close(self) -> None:
        self._client.close()


def _http_severity(status: int) -> Severity:
    if status in (408, 425, 429) or status >= 500:
        return "transient"
    return "permanent"


def _post(
    client: httpx.Client,
    url: str,
    *,
    ambiguous_after_send: bool,
    **kwargs: object,
) -> httpx.Response:
    try:
        return client.post(url, **kwargs)  # type: ignore[arg-type]
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise DeliveryError("transient", f"cannot reach {url}: {exc!r}") from exc
    except (httpx.WriteError, httpx.WriteTimeout) as exc:
        # The request was not complete, so the other side cannot have acted on it.
        raise DeliveryError("transient", f"connection lost sending to {url}: {exc!r}") from exc
    except httpx.TransportError as exc:
        severity: Severity = "ambiguous" if ambiguous_after_send else "transient"
        raise DeliveryError(severity, f"no answer from {url}: {exc!r}") from exc


class WebhookSender:
    """POSTs JSON to subscriber URLs, signed with each endpoint's secret.

    A webhook whose answer is lost is retried with the same Idempotency-Key: webhook
    receivers drop repeats by that key (the usual webhook contract), so retrying is safe.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        client: httpx.Client | None = None,
        allow_private: bool = False,
    ) -> None:
        self._client = client or httpx.Client(timeout=timeout_s)
        self.allow_private = allow_private

    def send(
        self, *, url: str, secret: str, payload: dict[str, object], idempotency_key: str
    ) -> str:
        if not self.allow_private:
            # Checked again here: the name may point elsewhere than when it was registered.
            try:
                targets.check_public(url)
            except targets.PrivateTarget as exc:
                raise DeliveryError("permanent", f"not sent: {exc}") from exc
            except targets.Unresolvable as exc:
                raise DeliveryError("transient", str(exc)) from exc
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret, int(time.time()), body),
            IDEMPOTENCY_HEADER: idempotency_key,
            "User-Agent": "geo311-webhooks/1",
        }
        response = _post(
            self._client, url, content=body, headers=headers, ambiguous_after_send=False
        )
        if 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        raise DeliveryError(
            _http_severity(response.status_code),
            f"webhook answered {response.status_code}: {response.text[:200]}",
        )

    def close(self) -> None:
        self._client.close()


def sms_provider(settings: SmsSettings) -> TwilioSms | None:
    """Return the configured SMS provider, or None when SMS is not set up."""
    if settings.provider == "none":
        return None
    return TwilioSms(settings)
